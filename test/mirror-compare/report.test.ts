import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { createCompareHttpHandler, ShadowComparison, type CompareReport } from '../../src/mirror-compare/index.js';
import { escapeHtml, renderReportPage } from '../../src/mirror-compare/report-page.js';
import { ORDERS, recordTrafficMix, USERS, XSS } from './traffic-mix.js';

let server: Server;
let base: string;
const comparison = new ShadowComparison({ wallClock: () => new Date('2026-12-01T12:00:00Z') });

beforeAll(async () => {
  recordTrafficMix(comparison);
  const handle = createCompareHttpHandler(comparison);
  server = createServer((req, res) => {
    if (!handle(req, res)) res.writeHead(404, { 'content-type': 'text/plain' }).end('other listener route\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('/mirror/diffs', () => {
  it('serves the per-route summary as JSON', async () => {
    const res = await request(`${base}/mirror/diffs`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    const report = (await res.body.json()) as CompareReport;
    const orders = report.routes.find((r) => r.route === ORDERS)!;
    expect(orders).toMatchObject({ compared: 90, equal: 60, differ: 30 });
    expect(orders.counts).toMatchObject({ equal: 60, differ_body: 24, differ_status: 6, mirror_timeout: 3, mirror_error: 2, primary_only: 0, skipped: 0 });
    // The 500 answers lack every member, so /total also counts their 6 (24 + 6).
    expect(orders.topFields.map((f) => [f.field, f.count])).toEqual([
      ['body:/total', 30], ['body:/error', 6], ['body:/id', 6], ['body:/items', 6], ['status', 6],
    ]);
    expect(orders.topFields[0]).toEqual({ field: 'body:/total', count: 30, primary: '42.5', candidate: '45' });
    // The latest difference is i = 79 (i % 15 in 1..4); the query is dropped.
    expect(orders.examples[0]!.path).toBe('/orders/1079');
    const users = report.routes.find((r) => r.route === USERS)!;
    expect(users).toMatchObject({ compared: 31, equal: 30, differ: 1 });
    expect(users.noiseSuppressed).toEqual([{ field: 'body:/ts', count: 31 }]);
    expect(users.topFields).toEqual([{ field: 'header:x-note', count: 1, primary: null, candidate: XSS }]);
  });

  it('never shows credentials: authorization headers and secret JSON members are redacted', async () => {
    const text = await (await request(`${base}/mirror/diffs`)).body.text();
    expect(text).not.toContain('secret-token');
    expect(text).not.toContain('token=abc');
    expect(text).toContain('[redacted]');
  });

  it('GET only; HEAD has headers and no body; other paths are left to the listener', async () => {
    const post = await request(`${base}/mirror/diffs`, { method: 'POST', body: '' });
    expect([post.statusCode, post.headers.allow]).toEqual([405, 'GET, HEAD']);
    await post.body.dump();
    const head = await request(`${base}/mirror/report`, { method: 'HEAD' });
    expect(head.statusCode).toBe(200);
    expect(Number(head.headers['content-length'])).toBeGreaterThan(1000);
    await head.body.dump();
    const other = await request(`${base}/metrics`);
    expect([other.statusCode, await other.body.text()]).toEqual([404, 'other listener route\n']);
  });
});

describe('/mirror/report', () => {
  it('is one self-contained HTML page: no script, no external asset, a strict CSP', async () => {
    const res = await request(`${base}/mirror/report?x=1`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    const html = await res.body.text();
    expect(html).not.toMatch(/<script|<link|src=["']?http|@import|url\(/i);
    expect(html).toContain('<td data-testid="compared">90</td>');
    expect(html).toContain('<code>body:/total</code>');
  });

  it('renders markup from traffic as text (a <script> header value is escaped)', async () => {
    const html = await (await request(`${base}/mirror/report`)).body.text();
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<img src=x');
    expect(html).toContain(escapeHtml(XSS));
    expect(escapeHtml(`<a href="x" title='y'>&`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;');
  });

  it('says so when nothing was compared yet', () => {
    expect(renderReportPage({ generatedAt: 'now', routes: [] })).toContain('No compared traffic yet');
  });
});
