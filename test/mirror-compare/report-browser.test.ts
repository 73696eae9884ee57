/**
 * The report as an operator sees it: served from a real HTTP server on 127.0.0.1, opened in a
 * real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core), checked for
 * what it shows for a known traffic mix, and photographed into docs/images/mirror-report.png
 * (so the screenshot in docs/compare.md stays current). Skipped, saying why, without chromium.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCompareHttpHandler, ShadowComparison } from '../../src/mirror-compare/index.js';
import { ORDERS, recordTrafficMix, USERS, XSS } from './traffic-mix.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../../docs/images/mirror-report.png', import.meta.url));
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`report-browser.test.ts skipped: ${CHROMIUM} is not installed (apt-get install -y chromium)`);

describe.skipIf(!haveChromium)(`the report page in headless Chromium (skipped when ${CHROMIUM} is absent)`, () => {
  let server: Server;
  let base: string;
  let context: BrowserContext;
  let profile: string;

  beforeAll(async () => {
    const comparison = new ShadowComparison({ wallClock: () => new Date('2026-12-01T12:00:00Z') });
    recordTrafficMix(comparison);
    const handle = createCompareHttpHandler(comparison);
    server = createServer((req, res) => {
      if (!handle(req, res)) res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    profile = mkdtempSync(path.join(os.tmpdir(), 'cmp-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    if (server) {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('shows the counts, the top differing field, noise and a side-by-side example; markup from traffic stays text', async () => {
    const page = await context.newPage();
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    let dialogs = 0;
    page.on('dialog', (d) => {
      dialogs++;
      void d.dismiss();
    });
    const res = await page.goto(`${base}/mirror/report`);
    expect(res?.status()).toBe(200);
    expect(await page.title()).toBe('Mirror comparison report');

    const orders = page.locator(`section[data-route="${ORDERS}"]`);
    expect(await orders.getByTestId('compared').innerText()).toBe('90');
    expect(await orders.getByTestId('equal').innerText()).toBe('60');
    expect(await orders.getByTestId('differ').innerText()).toBe('30');
    expect(await orders.getByTestId('differ-rate').innerText()).toBe('33.3 %');
    expect(await orders.locator('td[data-result="mirror_timeout"]').innerText()).toBe('3');
    const firstField = orders.getByTestId('top-fields').locator('tbody tr').first();
    expect(await firstField.locator('td').allInnerTexts()).toEqual(['body:/total', '30', '33.3 %', '42.5', '45']);

    const example = orders.getByTestId('example').first();
    expect(await example.locator('h4 code').innerText()).toBe('GET /orders/1079');
    const sides = example.locator('.side');
    expect(await sides.count()).toBe(2);
    expect(await sides.locator('h5').allInnerTexts()).toEqual(['Real answer', 'Mirror answer (http://orders-v2:8080)']);
    expect(await sides.nth(0).locator('pre.body').innerText()).toContain('"total": 42.5');
    expect(await sides.nth(1).locator('pre.body').innerText()).toContain('"total": 45');
    expect(await sides.nth(0).locator('pre.headers').innerText()).toContain('authorization: [redacted]');
    // Side by side: the mirror's column starts to the right of the real answer's, on the same row.
    const [a, b] = [await sides.nth(0).boundingBox(), await sides.nth(1).boundingBox()];
    expect(b!.x).toBeGreaterThanOrEqual(a!.x + a!.width);
    expect(b!.y).toBe(a!.y);

    const users = page.locator(`section[data-route="${USERS}"]`);
    expect(await users.getByTestId('noise-fields').locator('tbody tr').first().locator('td').allInnerTexts())
      .toEqual(['body:/ts', 'GET /users/:id', '31 / 31', 'yes', '31']);
    expect(await users.getByTestId('top-fields').innerText()).toContain(XSS);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('script').count()).toBe(0);
    expect(dialogs).toBe(0);
    expect(requested).toEqual([`${base}/mirror/report`]);

    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
    await page.close();
  }, 120_000);
});
