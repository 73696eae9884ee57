/**
 * Framework-free handlers for `/mirror/diffs` (JSON) and `/mirror/report` (HTML), to be mounted
 * on the runner's metrics listener. They read the comparison's report and nothing else.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { renderReportPage } from './report-page.js';
import type { CompareReport } from './shadow-comparison.js';

/** Anything that can produce the report (a ShadowComparison). */
export interface ReportSource {
  report(): CompareReport;
}

// The page has no script and loads nothing: the policy makes an injected tag inert even if
// escaping ever failed.
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

function allowed(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed: use GET\n');
  return false;
}

function send(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, text: string): void {
  res.writeHead(200, { ...headers, 'content-length': String(Buffer.byteLength(text)) });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/** GET /mirror/diffs: the report as JSON. */
export function serveDiffs(source: ReportSource, req: IncomingMessage, res: ServerResponse): void {
  if (!allowed(req, res)) return;
  send(req, res, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' },
    JSON.stringify(source.report()));
}

/** GET /mirror/report: the HTML page. */
export function serveReport(source: ReportSource, req: IncomingMessage, res: ServerResponse): void {
  if (!allowed(req, res)) return;
  send(req, res, PAGE_HEADERS, renderReportPage(source.report()));
}

/**
 * One handler for both paths; returns false (and writes nothing) for any other path, so the
 * metrics listener can go on to its own routes.
 */
export function createCompareHttpHandler(source: ReportSource): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    if (path === '/mirror/diffs') serveDiffs(source, req, res);
    else if (path === '/mirror/report') serveReport(source, req, res);
    else return false;
    return true;
  };
}
