/**
 * The HTML report an operator reads: per route the counts and differ rate, the top differing
 * fields, the noise fields, and the latest examples with the real and the mirror answer side by
 * side. One self-contained page (inline CSS, no script, no external asset) built only from
 * `CompareReport`; every value from traffic is HTML-escaped.
 */
import { COMPARE_RESULTS } from './compare-result.js';
import type { CompareReport } from './shadow-comparison.js';
import type { DiffExample, SideView } from './recent-differences.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const e = escapeHtml;

function percent(x: number): string {
  return `${(x * 100).toFixed(x > 0 && x < 0.001 ? 3 : 1)} %`;
}

function value(v: string | null): string {
  return v === null ? '<span class="absent">(absent)</span>' : `<code>${e(v)}</code>`;
}

function side(title: string, s: SideView): string {
  const headers = s.headers.map(([n, v]) => `${e(n)}: ${e(v)}`).join('\n');
  return `<div class="side"><h5>${e(title)}</h5>
<p>status <b data-testid="status">${s.status ?? '—'}</b>${s.durationMs === null ? '' : ` · ${s.durationMs.toFixed(1)} ms`}</p>
<pre class="headers">${headers}</pre><pre class="body">${e(s.body)}</pre></div>`;
}

function example(x: DiffExample): string {
  const rows = x.differences.map((d) => `<tr><td><code>${e(d.field)}</code></td><td>${value(d.primary)}</td><td>${value(d.candidate)}</td></tr>`).join('');
  const noise = x.noise.length ? `<p class="muted">set aside as noise: ${x.noise.map((n) => `<code>${e(n)}</code>`).join(', ')}</p>` : '';
  return `<article class="example" data-testid="example">
<h4><code>${e(x.method)} ${e(x.path)}</code> <span class="tag">${e(x.result)}</span> <span class="muted">${e(x.at)} → ${e(x.target)}</span></h4>
<table class="diff"><thead><tr><th>field</th><th>real answer</th><th>mirror answer</th></tr></thead><tbody>${rows}</tbody></table>${noise}
<div class="side-by-side">${side('Real answer', x.primary)}${side(`Mirror answer (${x.target})`, x.candidate)}</div></article>`;
}

// `equal` has its own column next to compared and differ.
const RESULT_COLUMNS = COMPARE_RESULTS.filter((r) => r !== 'equal');

function route(r: CompareReport['routes'][number]): string {
  const counts = RESULT_COLUMNS.map((k) => `<td data-result="${k}">${r.counts[k]}</td>`).join('');
  const fields = r.topFields.length === 0 ? '<p class="muted">No differing field.</p>'
    : `<table class="fields" data-testid="top-fields"><thead><tr><th>field</th><th>differed</th><th>share of compared</th><th>latest real</th><th>latest mirror</th></tr></thead><tbody>${
      r.topFields.map((f) => `<tr><td><code>${e(f.field)}</code></td><td>${f.count}</td><td>${percent(r.compared ? f.count / r.compared : 0)}</td><td>${value(f.primary)}</td><td>${value(f.candidate)}</td></tr>`).join('')}</tbody></table>`;
  const suppressed = new Map(r.noiseSuppressed.map((n) => [n.field, n.count]));
  const noise = r.noiseFields.length === 0 ? '<p class="muted">No noise learned (no secondary, or no field differed between the real answer and the secondary).</p>'
    : `<table class="noise" data-testid="noise-fields"><thead><tr><th>field</th><th>path pattern</th><th>real vs secondary differed</th><th>trusted</th><th>set aside in mirror comparisons</th></tr></thead><tbody>${
      r.noiseFields.map((n) => `<tr><td><code>${e(n.field)}</code></td><td><code>${e(n.pattern)}</code></td><td>${n.differed} / ${n.samples}</td><td>${n.trusted ? 'yes' : 'not yet'}</td><td>${suppressed.get(n.field) ?? 0}</td></tr>`).join('')}</tbody></table>`;
  const examples = r.examples.length === 0 ? '<p class="muted">No difference kept.</p>' : r.examples.map(example).join('');
  return `<section class="route" data-testid="route" data-route="${e(r.route)}">
<h2>Route <code>${e(r.route)}</code> <span class="muted">→ ${r.targets.map(e).join(', ')}</span></h2>
<table class="summary"><thead><tr><th>compared</th><th>equal</th><th>differ</th><th>differ rate</th>${RESULT_COLUMNS.map((k) => `<th>${k}</th>`).join('')}<th>pending</th></tr></thead>
<tbody><tr><td data-testid="compared">${r.compared}</td><td data-testid="equal">${r.equal}</td><td data-testid="differ">${r.differ}</td><td data-testid="differ-rate">${percent(r.differRate)}</td>${counts}<td>${r.pending.count}</td></tr></tbody></table>
<h3>Top differing fields</h3>${fields}
<h3>Noise fields</h3>${noise}
<h3>Latest differences</h3>${examples}</section>`;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px 24px;color:#1d232a;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 8px}h3{font-size:15px;margin:16px 0 6px}h4{font-size:14px;margin:0 0 6px}h5{margin:0 0 4px;font-size:13px}
.route{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:14px 16px;margin:16px 0}
table{border-collapse:collapse;margin:4px 0;font-size:13px}th,td{border:1px solid #d8dde3;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}td code{word-break:break-all}
.summary td{text-align:right}.muted{color:#66707a;font-weight:normal}.absent{color:#9aa3ab;font-style:italic}
.tag{background:#fde8e8;color:#9b1c1c;border-radius:3px;padding:0 6px;font-size:12px}
.example{border-top:1px solid #e3e7eb;padding:10px 0}
.side-by-side{display:grid;grid-template-columns:1fr 1fr;gap:12px}.side{min-width:0}
pre{background:#f3f5f7;border:1px solid #e3e7eb;padding:6px;margin:4px 0;white-space:pre-wrap;word-break:break-all;max-height:18em;overflow:auto;font-size:12px}
`;

/** The whole page. */
export function renderReportPage(report: CompareReport): string {
  const body = report.routes.length === 0
    ? '<p>No compared traffic yet. Routes appear here once a mirrored request with a <code>compare</code> block has both answers.</p>'
    : report.routes.map(route).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Mirror comparison report</title><style>${STYLE}</style></head>
<body><header><h1>Mirror comparison</h1><p class="muted">Real answers (APISIX's upstream) against mirror answers, per route · generated ${e(report.generatedAt)} · <a href="diffs">JSON</a></p></header>
${body}</body></html>
`;
}
