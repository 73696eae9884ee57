/**
 * A known traffic mix recorded into a ShadowComparison, for the report tests (HTTP and browser):
 *  - route#orders → http://orders-v2:8080: 90 compared (60 equal, 24 differ_body on /total,
 *    6 differ_status 500), 3 mirror_timeout, 2 mirror_error; 2 examples kept (a short page);
 *  - route#users → http://users-v2:8080 with a secondary: 30 pairs whose `ts` differs on every
 *    answer (all equal, ts reported as noise), then 1 answer whose `x-note` header carries markup.
 */
import { parseCompareConf, ShadowComparison, type MirrorAnswer, type PrimaryAnswer } from '../../src/mirror-compare/index.js';

export const ORDERS = 'route#orders';
export const USERS = 'route#users';
export const XSS = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>';

const answer = (status: number, body: unknown, headers: [string, string][] = []): MirrorAnswer => ({
  status, headers: [['content-type', 'application/json'], ['authorization', 'Bearer secret-token'], ...headers], body: Buffer.from(JSON.stringify(body)), truncated: false, durationMs: 12.5,
});

function primaryOf(a: MirrorAnswer): PrimaryAnswer {
  return { status: a.status, headers: a.headers, body: a.body, truncated: false, durationMs: 10 };
}

export function recordTrafficMix(c: ShadowComparison): void {
  const orders = parseCompareConf({ body: { ignore: ['/generated_at'] }, examples: 2 });
  for (let i = 0; i < 90; i++) {
    const key = `o${i}`;
    c.expect(key, { route: ORDERS, target: 'http://orders-v2:8080', method: 'GET', path: `/orders/${1000 + i}?token=abc`, conf: orders });
    const real = { id: 1000 + i, total: 42.5, items: [{ sku: 'A1', qty: 1 }], generated_at: i };
    const cand = i % 15 === 0 ? null : i % 15 <= 4 ? { ...real, total: 45, generated_at: -i } : { ...real, generated_at: -i };
    c.recordPrimary(ORDERS, key, primaryOf(answer(200, real)));
    c.recordMirror(ORDERS, key, 'http://orders-v2:8080', cand === null ? answer(500, { error: 'boom' }) : answer(200, cand));
  }
  for (let i = 0; i < 5; i++) {
    const key = `f${i}`;
    c.expect(key, { route: ORDERS, target: 'http://orders-v2:8080', method: 'POST', path: '/orders', conf: orders });
    c.recordMirror(ORDERS, key, 'http://orders-v2:8080', i < 3 ? { failure: 'timeout' } : { failure: 'error', code: 'ECONNREFUSED' });
  }
  const users = parseCompareConf({ secondary: 'http://users-v1b:8080', noise_min_samples: 10 });
  for (let i = 0; i < 31; i++) {
    const key = `u${i}`;
    c.expect(key, { route: USERS, target: 'http://users-v2:8080', method: 'GET', path: `/users/${i}`, conf: users });
    const body = (ts: number) => ({ id: i, name: `user ${i}`, ts });
    const note: [string, string][] = i === 30 ? [['x-note', XSS]] : [];
    c.recordSecondary(USERS, key, 'http://users-v2:8080', answer(200, body(3_000 + i)));
    c.recordMirror(USERS, key, 'http://users-v2:8080', answer(200, body(2_000 + i), note));
    c.recordPrimary(USERS, key, primaryOf(answer(200, body(1_000 + i))));
  }
}
