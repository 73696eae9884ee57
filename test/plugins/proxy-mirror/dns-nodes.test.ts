/**
 * A target given by a host name with several addresses, resolved through the runner's
 * `dns_resolver` setting by a real DNS server on 127.0.0.1 (test/harness/dns-server.ts), its
 * addresses served by real HTTP(S) servers on one port: 127.0.0.1, 127.0.0.2, 127.0.0.3 and
 * ::1. Every 127.0.0.0/8 address is loopback on Linux, so binding 127.0.0.2 stays on this
 * machine like 127.0.0.1. Runs with copies sent from the RPC thread and from a worker thread.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { describe, it, expect, afterEach } from 'vitest';
import { generate } from 'selfsigned';
import { ConfError } from '../../../src/plugin-api/index.js';
import { parseSettings } from '../../../src/plugins/proxy-mirror/conf.js';
import { DnsServer } from '../../harness/dns-server.js';
import { call, expectOk, mirrorRoute, startMirrorRunner, until, type MirrorRunner } from './fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** HTTP(S) servers on several addresses and one port, counting the requests each address got. */
interface AddressServers {
  readonly port: number;
  /** Requests per local address (`127.0.0.1`, `::1`…). */
  readonly counts: Map<string, number>;
  /** TLS server names the clients sent (https only). */
  readonly servernames: Set<string>;
  total(): number;
}

async function listen(server: http.Server, port: number, address: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

async function addressServers(addresses: readonly string[], tls?: { key: string; cert: string }): Promise<AddressServers> {
  const counts = new Map<string, number>(addresses.map((a) => [a, 0]));
  const servernames = new Set<string>();
  const handler: http.RequestListener = (req, res) => {
    req.resume();
    req.on('end', () => {
      const local = req.socket.localAddress ?? '?';
      counts.set(local, (counts.get(local) ?? 0) + 1);
      const name = (req.socket as { servername?: string | false }).servername;
      if (typeof name === 'string') servernames.add(name);
      res.end('ok');
    });
  };
  // The first address picks a free port; the others must get the same one (bounded retries
  // when another test holds it on one of them).
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers: http.Server[] = [];
    const closeAll = async (): Promise<void> => {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    };
    try {
      let port = 0;
      for (const address of addresses) {
        const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
        port = await listen(server, port, address);
        servers.push(server);
      }
      cleanups.push(closeAll);
      return { port, counts, servernames, total: () => [...counts.values()].reduce((a, b) => a + b, 0) };
    } catch (err) {
      await closeAll();
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
  throw new Error('no port free on every address');
}

async function dnsServer(): Promise<DnsServer> {
  const dns = await DnsServer.start();
  cleanups.push(() => dns.close());
  return dns;
}

async function runner(dns: DnsServer, threads: number, settings: Record<string, unknown> = {}): Promise<MirrorRunner> {
  const mr = await startMirrorRunner({ now: () => 0, jitter: () => 0.5, settings: { dns_resolver: [dns.address], mirror_threads: threads, ...settings } });
  cleanups.push(() => mr.close());
  return mr;
}

async function send(mr: MirrorRunner, route: ReturnType<typeof mirrorRoute>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) expectOk(await mr.client.httpReqCall(route, call({ path: `/c${i}` })));
}

describe.each([1, 2])('a host name with several addresses (mirror_threads %i)', (threads) => {
  it('balances copies exactly across its A and AAAA addresses, counted per address', async () => {
    const dns = await dnsServer();
    const servers = await addressServers(['127.0.0.1', '127.0.0.2', '::1']);
    dns.set('mirror.test', ['127.0.0.1', '127.0.0.2', '::1']);
    const mr = await runner(dns, threads);
    const host = `http://mirror.test:${servers.port}`;
    // Sent at once: copies wait for the name's first answer, then go round robin.
    await send(mr, mirrorRoute(`route#dns-balance-${threads}#x#1`, { host }), 30);
    await until(() => servers.total() === 30, '30 copies');
    expect(Object.fromEntries(servers.counts)).toEqual({ '127.0.0.1': 10, '127.0.0.2': 10, '::1': 10 });
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: '2xx' })) === 30, '30 answers');
    for (const node of [`http://127.0.0.1:${servers.port}`, `http://127.0.0.2:${servers.port}`, `http://[::1]:${servers.port}`]) {
      expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: host, node, outcome: '2xx' })).toBe(10);
      expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: host, node, outcome: 'sent' })).toBe(10);
    }
    // The addresses came from the configured nameserver (the system resolver knows no mirror.test).
    expect(dns.answered.some((q) => q.name === 'mirror.test' && q.type === 'A')).toBe(true);
    expect(dns.answered.some((q) => q.name === 'mirror.test' && q.type === 'AAAA')).toBe(true);
  });

  it('moves copies to the remaining addresses when a re-resolution drops one', async () => {
    const dns = await dnsServer();
    const servers = await addressServers(['127.0.0.1', '127.0.0.2', '::1']);
    dns.set('mirror.test', ['127.0.0.1', '127.0.0.2', '::1']);
    const mr = await runner(dns, threads, { resolve_every: '50ms' });
    const host = `http://mirror.test:${servers.port}`;
    const route = mirrorRoute(`route#dns-shrink-${threads}#x#1`, { host });
    await send(mr, route, 6);
    await until(() => servers.total() === 6, 'first 6 copies');
    expect(Object.fromEntries(servers.counts)).toEqual({ '127.0.0.1': 2, '127.0.0.2': 2, '::1': 2 });

    const version = dns.set('mirror.test', ['127.0.0.1', '::1']);
    // A round queries again only after the previous round's nodes are in place, so a third A
    // query after the change proves a round that saw only the new answer has been applied.
    await until(() => dns.answeredSince(version, 'A').length >= 3, 'three resolution rounds after the change');
    await send(mr, route, 6);
    await until(() => servers.total() === 12, 'next 6 copies');
    expect(Object.fromEntries(servers.counts)).toEqual({ '127.0.0.1': 5, '127.0.0.2': 2, '::1': 5 });
    expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: host, node: `http://127.0.0.2:${servers.port}`, outcome: 'sent' })).toBe(2);
  });

  it('takes a dead address out with its breaker while the live one keeps getting copies', async () => {
    const dns = await dnsServer();
    // Nothing listens on 127.0.0.3 at this port: connections to it are refused.
    const servers = await addressServers(['127.0.0.1']);
    dns.set('mirror.test', ['127.0.0.1', '127.0.0.3']);
    const mr = await runner(dns, threads, { breaker: { failures: 1 } });
    const host = `http://mirror.test:${servers.port}`;
    const dead = `http://127.0.0.3:${servers.port}`;
    await send(mr, mirrorRoute(`route#dns-dead-${threads}#x#1`, { host, max_concurrency: 1 }), 20);
    const count = (outcome: string): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome });
    await until(async () => (await count('2xx')) + (await count('error')) === 20, '20 copies ended');
    // One copy at a time: the dead address is tried once, then skipped (the clock stands still: no probe).
    expect(await count('error')).toBe(1);
    expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: host, node: dead, outcome: 'error' })).toBe(1);
    expect(servers.counts.get('127.0.0.1')).toBe(19);
    expect(await mr.metric('apisix_runner_mirror_node_up', { target: host, node: dead })).toBe(0);
    expect(mr.logs.filter((l) => String(l['msg']).includes('unreachable') && l['node'] === dead)).toHaveLength(1);
  });

  it('checks TLS against the name, not the address', async () => {
    // A certificate for mirror.test only: an address check would refuse every copy.
    const g = await generate([{ name: 'commonName', value: 'mirror.test' }], {
      keySize: 2048, algorithm: 'sha256', extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'mirror.test' }] }],
    });
    const dns = await dnsServer();
    const servers = await addressServers(['127.0.0.1', '::1'], { key: g.private, cert: g.cert });
    dns.set('mirror.test', ['127.0.0.1', '::1']);
    const mr = await runner(dns, threads, { tls_ca: g.cert });
    const host = `https://mirror.test:${servers.port}`;
    await send(mr, mirrorRoute(`route#dns-tls-${threads}#x#1`, { host }), 4);
    const count = (outcome: string): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome });
    await until(async () => (await count('2xx')) + (await count('error')) === 4, '4 copies ended');
    expect(await count('2xx')).toBe(4);
    expect(Object.fromEntries(servers.counts)).toEqual({ '127.0.0.1': 2, '::1': 2 });
    expect([...servers.servernames]).toEqual(['mirror.test']);
  });
});

describe('a host name the nameserver cannot answer for (yet)', () => {
  it('sends copies to the bare name after a failed first answer, then to the addresses once the name resolves', async () => {
    const dns = await dnsServer();
    const servers = await addressServers(['127.0.0.1']);
    const mr = await runner(dns, 1, { resolve_every: '50ms', breaker: { failures: 1 } });
    const host = `http://mirror.test:${servers.port}`;
    const route = mirrorRoute('route#dns-late#x#1', { host });
    // NXDOMAIN: the copy goes to the name itself, which the system lookup does not know either.
    await send(mr, route, 1);
    const count = (outcome: string): Promise<number> => mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome });
    await until(async () => (await count('error')) === 1, 'the copy to the bare name failed');
    expect(mr.logs.some((l) => String(l['msg']).includes('failed (error)') && /^(ENOTFOUND|EAI_AGAIN)$/.test(String(l['code'])))).toBe(true);

    const version = dns.set('mirror.test', ['127.0.0.1']);
    await until(() => dns.answeredSince(version, 'A').length >= 3, 'three resolution rounds after the name appeared');
    await send(mr, route, 3);
    await until(() => servers.total() === 3, '3 copies to the address');
    expect(await mr.metric('apisix_runner_mirror_node_requests_total', { target: host, node: `http://127.0.0.1:${servers.port}`, outcome: '2xx' })).toBe(3);
  });

  it('holds copies in the queue while the nameserver is silent, and drops them at shutdown', async () => {
    const dns = await dnsServer();
    dns.mute = true;
    const mr = await startMirrorRunner({ settings: { dns_resolver: [dns.address], close_grace: '100ms' } });
    let closed = false;
    cleanups.push(async () => {
      if (!closed) await mr.close();
    });
    const host = 'http://mirror.test:8080';
    await send(mr, mirrorRoute('route#dns-silent#x#1', { host, max_queue: 2 }), 3);
    await until(() => dns.ignored >= 1, 'the first query');
    // Two wait for the first answer, the third found the queue full. (The resolver gives up
    // after two tries of 2 s and more; these steps take milliseconds.)
    expect(await mr.metric('apisix_runner_mirror_queued', { target: host })).toBe(2);
    expect(await mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: 'dropped' })).toBe(1);
    await mr.close();
    closed = true;
    expect(await mr.metric('apisix_runner_mirror_queued', { target: host })).toBe(0);
    expect(await mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: 'dropped' })).toBe(3);
    expect(await mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: 'sent' })).toBe(0);
  });
});

describe('the dns_resolver setting', () => {
  const field = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      if (err instanceof ConfError) return err.message;
      throw err;
    }
    throw new Error('no ConfError');
  };

  it('takes nameservers as ip, ip:port, bare or bracketed IPv6, in the form node\'s resolver takes', () => {
    expect(parseSettings({}).dnsResolver).toBeUndefined();
    expect(parseSettings({ dns_resolver: ['10.0.0.2', '127.0.0.1:5353', '::1', '[fd00::2]:53', '[::1]'] }).dnsResolver)
      .toEqual(['10.0.0.2', '127.0.0.1:5353', '::1', '[fd00::2]:53', '::1']);
  });

  it('refuses what is not a list of IP nameservers, naming the entry', () => {
    expect(field(() => parseSettings({ dns_resolver: '10.0.0.2' }))).toMatch(/^proxy-mirror\.dns_resolver: must be a non-empty list/);
    expect(field(() => parseSettings({ dns_resolver: [] }))).toMatch(/^proxy-mirror\.dns_resolver: .*system resolver/);
    expect(field(() => parseSettings({ dns_resolver: ['10.0.0.2', 'ns1.example.com'] }))).toMatch(/^proxy-mirror\.dns_resolver\[1\]: must be an IP address/);
    expect(field(() => parseSettings({ dns_resolver: ['fe80::1%eth0'] }))).toMatch(/^proxy-mirror\.dns_resolver\[0\]: .*zone ids/);
    expect(field(() => parseSettings({ dns_resolver: ['10.0.0.2:70000'] }))).toMatch(/^proxy-mirror\.dns_resolver\[0\]: port out of range/);
    expect(field(() => parseSettings({ dns_resolver: [53] }))).toMatch(/^proxy-mirror\.dns_resolver\[0\]: must be a nameserver address/);
    expect(field(() => parseSettings({ dns_resolvers: ['10.0.0.2'] }))).toMatch(/unknown setting "dns_resolvers" \(did you mean "dns_resolver"\?/);
  });

  it('without it, a name the configured server alone knows is not resolved', async () => {
    // The same runner setup with no dns_resolver: the system lookup, which knows no mirror.test.
    const dns = await dnsServer();
    const servers = await addressServers(['127.0.0.1']);
    dns.set('mirror.test', ['127.0.0.1']);
    const mr = await startMirrorRunner({ now: () => 0, settings: { breaker: { failures: 1 } } });
    cleanups.push(() => mr.close());
    const host = `http://mirror.test:${servers.port}`;
    await send(mr, mirrorRoute('route#dns-system#x#1', { host }), 1);
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: host, outcome: 'error' })) === 1, 'copy failed');
    expect(servers.total()).toBe(0);
    expect(dns.answered).toHaveLength(0);
  });
});
