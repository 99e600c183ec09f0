// A small type DSL: one description of an interface gives both the parameter checks and the IDL text.

import { invalidParameter } from './errors.js';

export type VType =
  | { readonly kind: 'string' | 'int' | 'float' | 'bool' | 'object' }
  | { readonly kind: 'optional' | 'array' | 'map'; readonly of: VType }
  | { readonly kind: 'enum'; readonly values: readonly string[] }
  | { readonly kind: 'struct'; readonly fields: Readonly<Record<string, VType>> }
  | { readonly kind: 'ref'; readonly name: string };

export const t = {
  string: { kind: 'string' } as VType,
  int: { kind: 'int' } as VType,
  float: { kind: 'float' } as VType,
  bool: { kind: 'bool' } as VType,
  /** Any JSON object. */
  object: { kind: 'object' } as VType,
  optional: (of: VType): VType => ({ kind: 'optional', of }),
  array: (of: VType): VType => ({ kind: 'array', of }),
  /** A JSON object with string keys and values of one type (IDL `[string]T`). */
  map: (of: VType): VType => ({ kind: 'map', of }),
  enum: (values: readonly string[]): VType => ({ kind: 'enum', values }),
  struct: (fields: Record<string, VType>): VType => ({ kind: 'struct', fields }),
  /** A named type from the interface's `types`. */
  ref: (name: string): VType => ({ kind: 'ref', name }),
};

export interface MethodDef {
  in: Record<string, VType>;
  out: Record<string, VType>;
  doc?: string;
}

export interface InterfaceDef {
  name: string;
  doc?: string;
  /** Named types; Varlink only allows structs and enums here. */
  types?: Record<string, VType>;
  methods: Record<string, MethodDef>;
  errors?: Record<string, Record<string, VType>>;
}

/** `def` is the interface whose named types a ref may use. */
function typeText(def: InterfaceDef, v: VType): string {
  switch (v.kind) {
    case 'optional': return `?${typeText(def, v.of)}`;
    case 'array': return `[]${typeText(def, v.of)}`;
    case 'map': return `[string]${typeText(def, v.of)}`;
    case 'enum': return `(${v.values.join(', ')})`;
    case 'struct': return fieldsText(def, v.fields);
    case 'ref':
      if (!Object.hasOwn(def.types ?? {}, v.name)) throw new Error(`${def.name}: unknown type ${v.name}`);
      return v.name;
    default: return v.kind;
  }
}

function fieldsText(def: InterfaceDef, fields: Readonly<Record<string, VType>>): string {
  return `(${Object.entries(fields).map(([k, v]) => `${k}: ${typeText(def, v)}`).join(', ')})`;
}

function comment(doc: string | undefined): string {
  return doc === undefined ? '' : doc.split('\n').map((l) => (l ? `# ${l}\n` : '#\n')).join('');
}

/** The interface as Varlink IDL text, as GetInterfaceDescription answers it. Throws on a malformed definition. */
export function describeInterface(def: InterfaceDef): string {
  const blocks = [`${comment(def.doc)}interface ${def.name}`];
  for (const [name, type] of Object.entries(def.types ?? {})) {
    if (type.kind === 'struct' && Object.keys(type.fields).length > 0) {
      // Named structs one field a line, as the Varlink specification writes them.
      const lines = Object.entries(type.fields).map(([k, v]) => `  ${k}: ${typeText(def, v)}`);
      blocks.push(`type ${name} (\n${lines.join(',\n')}\n)`);
    } else if (type.kind === 'struct' || type.kind === 'enum') {
      blocks.push(`type ${name} ${typeText(def, type)}`);
    } else {
      throw new Error(`${def.name}: type ${name} must be a struct or an enum`);
    }
  }
  for (const [name, m] of Object.entries(def.methods)) {
    blocks.push(`${comment(m.doc)}method ${name}${fieldsText(def, m.in)} -> ${fieldsText(def, m.out)}`);
  }
  for (const [name, fields] of Object.entries(def.errors ?? {})) {
    blocks.push(`error ${name} ${fieldsText(def, fields)}`);
  }
  return `${blocks.join('\n\n')}\n`;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The first key of `obj` that is unknown, ill-typed or missing; undefined when all are fine. */
function firstBadKey(def: InterfaceDef, fields: Readonly<Record<string, VType>>, obj: Record<string, unknown>): string | undefined {
  // Keys in the order the client sent them, then the missing ones (as systemd's json_dispatch does).
  for (const [k, v] of Object.entries(obj)) {
    if (!Object.hasOwn(fields, k) || !matches(def, fields[k]!, v)) return k;
  }
  for (const [k, type] of Object.entries(fields)) {
    if (!Object.hasOwn(obj, k) && type.kind !== 'optional') return k;
  }
  return undefined;
}

function matches(def: InterfaceDef, type: VType, v: unknown): boolean {
  switch (type.kind) {
    case 'string': return typeof v === 'string';
    case 'int': return Number.isSafeInteger(v);
    case 'float': return typeof v === 'number' && Number.isFinite(v);
    case 'bool': return typeof v === 'boolean';
    case 'object': return isObject(v);
    case 'optional': return v === null || v === undefined || matches(def, type.of, v);
    case 'array': return Array.isArray(v) && v.every((x) => matches(def, type.of, x));
    case 'map': return isObject(v) && Object.values(v).every((x) => matches(def, type.of, x));
    case 'enum': return typeof v === 'string' && type.values.includes(v);
    case 'struct': return isObject(v) && firstBadKey(def, type.fields, v) === undefined;
    case 'ref': {
      if (!Object.hasOwn(def.types ?? {}, type.name)) throw new Error(`${def.name}: unknown type ${type.name}`);
      return matches(def, def.types![type.name]!, v);
    }
  }
}

/** Checks a call's parameters against the method's `in`; throws InvalidParameter naming the first bad key. */
export function validate(def: InterfaceDef, method: string, params: Record<string, unknown>): void {
  if (!Object.hasOwn(def.methods, method)) throw new Error(`${def.name}: no method ${method}`);
  const m = def.methods[method]!;
  const bad = firstBadKey(def, m.in, params);
  if (bad !== undefined) throw invalidParameter(bad);
}
