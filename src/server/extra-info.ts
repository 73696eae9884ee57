import type { ExtraInfoQuestion } from '../protocol/messages.js';

/** Asks APISIX one ExtraInfo question on the call's connection; resolves with `result`. */
export type AskExtraInfo = (question: ExtraInfoQuestion) => Promise<Buffer | undefined>;

/** Per-call cache of ExtraInfo answers, so each var and the body is fetched at most once. */
export class ExtraInfoCache {
  private vars: Map<string, Promise<Buffer | undefined>> | undefined;
  private bodyPromise: Promise<Buffer | undefined> | undefined;

  constructor(private readonly ask: AskExtraInfo, private readonly bodyKind: 'reqBody' | 'respBody') {}

  var(name: string): Promise<string | undefined> {
    this.vars ??= new Map();
    let p = this.vars.get(name);
    if (!p) {
      p = this.ask({ kind: 'var', name });
      this.vars.set(name, p);
    }
    return p.then((b) => (b === undefined ? undefined : b.toString('utf8')));
  }

  body(): Promise<Buffer | undefined> {
    return (this.bodyPromise ??= this.ask({ kind: this.bodyKind }));
  }
}
