/**
 * A real authoritative DNS server on 127.0.0.1 (UDP) for tests: answers A and AAAA queries
 * for the names it is given, with TTL 0 so no client caches an answer, NXDOMAIN for other
 * names. Packets are decoded and encoded with dns-packet. Every answered query is recorded
 * with the address set it got, so a test can wait for a client to have seen a change.
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import dnsPacket from 'dns-packet';

export interface AnsweredQuery {
  readonly name: string;
  readonly type: string;
  /** Version of the records when answered (bumped by every `set`). */
  readonly version: number;
  readonly addresses: readonly string[];
}

export class DnsServer {
  /** Queries answered, in arrival order. */
  readonly answered: AnsweredQuery[] = [];
  /** Queries received and left unanswered while `mute` was set. */
  ignored = 0;
  /** When set, queries get no answer (a nameserver that is down or unreachable). */
  mute = false;
  private readonly records = new Map<string, readonly string[]>();
  private version = 0;

  private constructor(private readonly socket: dgram.Socket, readonly port: number) {
    socket.on('message', (msg, peer) => this.answer(msg, peer));
  }

  static async start(): Promise<DnsServer> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve());
    });
    return new DnsServer(socket, socket.address().port);
  }

  /** `127.0.0.1:PORT`, as a nameserver entry. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Sets the addresses (IPv4 and IPv6 mixed) a name answers with; returns the new version. */
  set(name: string, addresses: readonly string[]): number {
    this.records.set(name.toLowerCase(), addresses);
    return ++this.version;
  }

  /** Answered queries of one type at or after a version. */
  answeredSince(version: number, type: 'A' | 'AAAA'): AnsweredQuery[] {
    return this.answered.filter((q) => q.version >= version && q.type === type);
  }

  private answer(msg: Buffer, peer: dgram.RemoteInfo): void {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return; // not a DNS packet: a real server drops it too
    }
    const question = query.questions?.[0];
    if (!question) return;
    if (this.mute) {
      this.ignored++;
      return;
    }
    const known = this.records.get(question.name.toLowerCase());
    const family = question.type === 'A' ? 4 : question.type === 'AAAA' ? 6 : 0;
    const addresses = (known ?? []).filter((a) => isIP(a) === family);
    this.answered.push({ name: question.name, type: question.type, version: this.version, addresses });
    const reply = dnsPacket.encode({
      id: query.id,
      type: 'response',
      // NXDOMAIN (rcode 3) for an unknown name; a known name without this family answers empty (no data).
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED | (known ? 0 : 3),
      questions: [question],
      answers: addresses.map((data) => ({ type: question.type as 'A' | 'AAAA', name: question.name, ttl: 0, class: 'IN' as const, data })),
    });
    this.socket.send(reply, peer.port, peer.address);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
