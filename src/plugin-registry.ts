import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import type { CallContext, FailurePolicy, JsonSchema, Logger, Plugin } from './plugin-api/plugin.js';
import { ConfError } from './plugin-api/plugin.js';
import type { TextPair } from './plugin-api/request.js';
import { describeUnknownKey } from './unknown-key.js';

/** One plugin of a route's chain, with its parsed conf. */
export interface ChainEntry {
  readonly plugin: Plugin<unknown>;
  readonly conf: unknown;
  readonly index: number;
}

/** Why a conf entry was rejected. */
export interface ConfProblem {
  readonly plugin: string;
  readonly index: number;
  readonly field: string;
  readonly message: string;
  readonly policy: FailurePolicy;
}

/** The result of compiling a route's conf array. */
export interface CompiledChain {
  readonly entries: readonly ChainEntry[];
  /** Entries left out because of their fail-open policy. */
  readonly skipped: readonly ConfProblem[];
  /** Set when a fail-closed plugin's conf is invalid: every call of this route is answered with an error. */
  readonly fatal: ConfProblem | undefined;
  readonly hasRequestPlugins: boolean;
  readonly hasResponsePlugins: boolean;
  /** Handed to every call of this route (built once, not per request). */
  readonly context: CallContext;
}

interface Registered {
  readonly plugin: Plugin<unknown>;
  /** undefined: no schema, or not compiled yet (`schema` still set). */
  validate: ValidateFunction | undefined;
  /** A schema left to compile on first use. */
  schema: JsonSchema | undefined;
}

const requireFromHere = createRequire(import.meta.url);

/** ajv, required with the first schema compiled (synchronously: registration and PrepareConf stay synchronous). */
function newAjv(): Ajv {
  const { Ajv: AjvClass } = requireFromHere('ajv') as typeof import('ajv');
  return new AjvClass({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false });
}

function describeAjvError(e: ErrorObject): { field: string; message: string } {
  const params = e.params as Record<string, unknown>;
  let field = e.instancePath;
  let message = e.message ?? 'is invalid';
  if (e.keyword === 'required') field = `${field}/${String(params['missingProperty'])}`;
  if (e.keyword === 'additionalProperties') {
    field = `${field}/${String(params['additionalProperty'])}`;
    message = 'is not a known field';
  }
  if (e.keyword === 'enum') message = `${message}: ${JSON.stringify(params['allowedValues'])}`;
  return { field: field || '/', message };
}

/** Why PrepareConf rejected a conf entry (the `reason` label of apisix_runner_conf_rejected_total). */
export type RejectReason = 'unknown_plugin' | 'invalid_json' | 'schema' | 'parse_conf';

export interface PluginRegistryOptions {
  /** Called once per rejected conf entry (a PrepareConf is compiled once per key). */
  readonly onReject?: (plugin: string, reason: RejectReason) => void;
  /**
   * Schemas compiled on the first PrepareConf that uses them instead of at registration: the
   * built-in plugins' schemas, fixed and compiled by their tests, so that a runner whose routes
   * never use a plugin never loads ajv for it. Every other schema is compiled at registration,
   * where a broken one fails the start.
   */
  readonly compileOnFirstUse?: ReadonlySet<JsonSchema>;
}

/** Holds the plugins a runner knows and compiles route confs against their schemas. */
export class PluginRegistry {
  private readonly plugins = new Map<string, Registered>();
  private ajv: Ajv | undefined;
  private readonly onReject: (plugin: string, reason: RejectReason) => void;
  private readonly compileOnFirstUse: ReadonlySet<JsonSchema>;

  constructor(options: PluginRegistryOptions = {}) {
    this.onReject = options.onReject ?? (() => undefined);
    this.compileOnFirstUse = options.compileOnFirstUse ?? new Set();
  }

  /**
   * Adds a plugin; its schema is compiled now so that a broken schema fails at start, not per
   * route (unless it is one of `compileOnFirstUse`).
   */
  register(plugin: Plugin<unknown>): void {
    if (!plugin || typeof plugin.name !== 'string' || plugin.name === '') {
      throw new Error('a plugin must have a non-empty string `name`');
    }
    if (this.plugins.has(plugin.name)) throw new Error(`plugin "${plugin.name}" is registered twice`);
    const reg: Registered = { plugin, validate: undefined, schema: plugin.confSchema };
    if (reg.schema && !this.compileOnFirstUse.has(reg.schema)) this.validatorOf(reg);
    this.plugins.set(plugin.name, reg);
  }

  /** The plugin's validator, compiled now if it was not (undefined: the plugin has no schema). */
  private validatorOf(reg: Registered): ValidateFunction | undefined {
    if (reg.schema) {
      try {
        reg.validate = (this.ajv ??= newAjv()).compile(reg.schema);
      } catch (err) {
        throw new Error(`plugin "${reg.plugin.name}" has an invalid confSchema: ${(err as Error).message}`);
      }
      reg.schema = undefined;
    }
    return reg.validate;
  }

  /** The registered plugin names, in registration order. */
  names(): string[] {
    return [...this.plugins.keys()];
  }

  get(name: string): Plugin<unknown> | undefined {
    return this.plugins.get(name)?.plugin;
  }

  /** Validates and parses every conf entry of a route (PrepareConf time, never per request). */
  compile(routeKey: string, conf: readonly TextPair[], logger: Logger): CompiledChain {
    const entries: ChainEntry[] = [];
    const skipped: ConfProblem[] = [];
    let fatal: ConfProblem | undefined;
    for (let index = 0; index < conf.length; index++) {
      const { name, value } = conf[index]!;
      const problem = (field: string, message: string, policy: FailurePolicy): ConfProblem => ({ plugin: name, index, field, message, policy });
      const reg = this.plugins.get(name);
      if (!reg) {
        this.onReject(name, 'unknown_plugin');
        fatal ??= problem('', `unknown plugin "${name}" (known: ${this.names().join(', ') || 'none'})`, 'closed');
        continue;
      }
      const policy = reg.plugin.failurePolicy ?? 'closed';
      let parsed: unknown;
      try {
        parsed = value === undefined || value === '' ? {} : JSON.parse(value);
      } catch (err) {
        this.onReject(name, 'invalid_json');
        const p = problem('', `conf is not valid JSON: ${(err as Error).message}`, policy);
        if (policy === 'open') skipped.push(p);
        else fatal ??= p;
        continue;
      }
      let validate: ValidateFunction | undefined;
      try {
        validate = this.validatorOf(reg);
      } catch (err) {
        // Only a schema compiled on first use can fail here; it fails every route using it, as a start would have.
        this.onReject(name, 'schema');
        fatal ??= problem('', (err as Error).message, 'closed');
        continue;
      }
      if (validate && !validate(parsed)) {
        this.onReject(name, 'schema');
        const first = describeAjvError(validate.errors![0]!);
        const all = validate.errors!.map((e) => {
          const d = describeAjvError(e);
          return `${d.field} ${d.message}`;
        });
        const p = problem(first.field, all.join('; '), policy);
        if (policy === 'open') skipped.push(p);
        else fatal ??= p;
        continue;
      }
      let confValue: unknown = parsed;
      if (reg.plugin.parseConf) {
        try {
          confValue = reg.plugin.parseConf(parsed, { routeKey, index, logger: logger.child({ plugin: name }) });
        } catch (err) {
          this.onReject(name, 'parse_conf');
          const field = err instanceof ConfError ? err.field : '';
          const message = err instanceof ConfError ? err.message : `parseConf failed: ${(err as Error)?.message ?? String(err)}`;
          const p = problem(field, message, policy);
          if (policy === 'open') skipped.push(p);
          else fatal ??= p;
          continue;
        }
      }
      entries.push({ plugin: reg.plugin, conf: confValue, index });
    }
    return {
      entries,
      skipped,
      fatal,
      hasRequestPlugins: entries.some((e) => typeof e.plugin.onRequest === 'function'),
      hasResponsePlugins: entries.some((e) => typeof e.plugin.onResponse === 'function'),
      context: { routeKey, logger: logger.child({ route: routeKey }) },
    };
  }

  /**
   * Checks one conf entry as PrepareConf would, and stricter: a top-level field the plugin's
   * schema does not list is an error here (a typo such as `sampl_ratio` is otherwise ignored).
   * For `check`, before deploying; returns every problem found, empty when the entry is good.
   */
  check(name: string, value: string | undefined, logger: Logger): Array<{ field: string; message: string }> {
    const reg = this.plugins.get(name);
    if (!reg) return [{ field: '', message: `unknown plugin "${name}" (known: ${this.names().join(', ') || 'none'})` }];
    let parsed: unknown;
    try {
      parsed = value === undefined || value === '' ? {} : JSON.parse(value);
    } catch (err) {
      return [{ field: '', message: `value is not valid JSON: ${(err as Error).message}` }];
    }
    const problems: Array<{ field: string; message: string }> = [];
    const properties = reg.plugin.confSchema?.['properties'];
    if (properties && typeof properties === 'object' && parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      for (const key of Object.keys(parsed)) {
        if (!(key in properties)) problems.push({ field: `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, message: describeUnknownKey(key, Object.keys(properties), 'field') });
      }
    }
    const validate = this.validatorOf(reg);
    if (validate && !validate(parsed)) {
      for (const e of validate.errors!) {
        const d = describeAjvError(e);
        if (!problems.some((p) => p.field === d.field)) problems.push(d);
      }
      return problems;
    }
    if (reg.plugin.parseConf) {
      try {
        const conf = reg.plugin.parseConf(parsed, { routeKey: 'check', index: 0, logger });
        reg.plugin.releaseConf?.(conf);
      } catch (err) {
        problems.push(err instanceof ConfError ? { field: err.field || '/', message: err.message.replace(`${err.field}: `, '') } : { field: '/', message: `parseConf failed: ${(err as Error)?.message ?? String(err)}` });
      }
    }
    return problems;
  }

  /** Gives plugins the chance to release what a conf holds. */
  release(chain: CompiledChain, logger: Logger): void {
    for (const e of chain.entries) {
      if (!e.plugin.releaseConf) continue;
      try {
        e.plugin.releaseConf(e.conf);
      } catch (err) {
        logger.warn({ plugin: e.plugin.name, err }, 'releaseConf threw');
      }
    }
  }
}
