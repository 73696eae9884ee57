import { describe, expect, it } from 'vitest';
import { scrubLogObject } from '../../src/observability/logger.js';

describe('log scrubbing', () => {
  it('redacts credential headers in maps and entry lists, in any case, and bodies at any depth', () => {
    const input = {
      headers: { Authorization: 'a', COOKIE: 'c', 'x-ok': 'keep' },
      list: [{ name: 'Proxy-Authorization', value: 'p' }, { name: 'x-ok', value: 'keep' }],
      nested: { req: { body: 'secret', path: '/p' } },
    };
    expect(scrubLogObject(input)).toEqual({
      headers: { Authorization: '[redacted]', COOKIE: '[redacted]', 'x-ok': 'keep' },
      list: [{ name: 'Proxy-Authorization', value: '[redacted]' }, { name: 'x-ok', value: 'keep' }],
      nested: { req: { body: '[redacted]', path: '/p' } },
    });
  });

  it('leaves errors and scalars alone', () => {
    const err = new Error('x');
    expect(scrubLogObject({ err, n: 1 })).toEqual({ err, n: 1 });
  });
});
