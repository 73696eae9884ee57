/**
 * How a target given by a host name finds its addresses. Without nameservers: the system's
 * lookup (getaddrinfo: /etc/hosts, then the resolvers of /etc/resolv.conf). With nameservers
 * (the runner's `dns_resolver` setting, modelled on APISIX's `apisix.dns_resolver`): A and
 * AAAA queries to those servers only, through node's own DNS client (c-ares), the way
 * APISIX's Lua resolver asks its configured nameservers rather than the system.
 */
import { lookup, Resolver } from 'node:dns/promises';

/** Resolves a host name to its distinct addresses (IPv4 and IPv6); rejects when it has none. */
export interface NameResolver {
  addresses(hostname: string): Promise<string[]>;
  /** Cancels queries in flight (their promises reject). */
  cancel(): void;
}

// APISIX's DNS client (apisix/core/dns/client.lua, `new`) waits 2 s per try; two tries keep
// the first resolution of a target, while copies wait for it, short.
const QUERY_TIMEOUT_MS = 2000;
const QUERY_TRIES = 2;

class SystemResolver implements NameResolver {
  async addresses(hostname: string): Promise<string[]> {
    const found = await lookup(hostname, { all: true });
    return [...new Set(found.map((a) => a.address))];
  }

  cancel(): void {
    // getaddrinfo cannot be cancelled; a late answer is ignored by the closed target.
  }
}

class NameserverResolver implements NameResolver {
  private readonly resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: QUERY_TRIES });

  constructor(servers: readonly string[]) {
    this.resolver.setServers([...servers]);
  }

  async addresses(hostname: string): Promise<string[]> {
    // A name with only IPv4 (or only IPv6) addresses answers the other query with no data:
    // that family is simply empty. Only when both fail is the name unresolved.
    const [v4, v6] = await Promise.allSettled([this.resolver.resolve4(hostname), this.resolver.resolve6(hostname)]);
    const found = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (found.length === 0) {
      const failed = v4.status === 'rejected' ? v4 : v6.status === 'rejected' ? v6 : undefined;
      throw failed ? failed.reason : new Error(`${hostname} has no A or AAAA record`);
    }
    return [...new Set(found)];
  }

  cancel(): void {
    this.resolver.cancel();
  }
}

/** The system lookup when `servers` is undefined, else a client of those nameservers (`ip`, `ip:port`, `[ipv6]:port`). */
export function createNameResolver(servers: readonly string[] | undefined): NameResolver {
  return servers === undefined ? new SystemResolver() : new NameserverResolver(servers);
}
