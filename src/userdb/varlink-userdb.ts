// The Varlink front end of userdb: io.systemd.UserDatabase as machined serves it (reference §4.3), for
// nss-systemd, userdbctl and our NSS module. It only translates between Varlink and records.ts.
import { errorTable, invalidParameter } from '../varlink/errors.js';
import { t, type InterfaceDef } from '../varlink/schema.js';
import type { Handler } from '../varlink/server.js';
import { validId } from '../registry/id-mapping.js';
import { type GroupRecord, type RecordMatch, type UserRecord, type UserRecords, SERVICE, recordMatches } from './records.js';

const IFACE = 'io.systemd.UserDatabase';

const errors = errorTable(IFACE, {
  NoRecordFound: {},
  BadService: {},
  ServiceNotAvailable: {},
  ConflictingRecordFound: {},
  EnumerationNotSupported: {},
  NonMatchingRecordFound: {},
});
const err = (name: keyof typeof errors.defs) => errors.make(name);
const noRecordFound = () => err('NoRecordFound');

const filters = (idMin: string, idMax: string) => ({
  fuzzyNames: t.optional(t.array(t.string)),
  dispositionMask: t.optional(t.array(t.string)),
  [idMin]: t.optional(t.int),
  [idMax]: t.optional(t.int),
});

export const userDatabaseInterface: InterfaceDef = {
  name: IFACE,
  doc: 'User and group records vu-MACHINE-UID and vg-MACHINE-GID for the host IDs that running containers\'\nuser namespaces map, as systemd-machined serves them (https://systemd.io/USER_GROUP_API/).\nservice must be "io.systemd.Machine". There is no enumeration: a lookup needs an ID or a name.',
  methods: {
    GetUserRecord: {
      doc: 'The user record of uid, else of userName (uid wins; both given and not the same record:\nConflictingRecordFound). fuzzyNames, dispositionMask, uidMin and uidMax filter the record found\n(NonMatchingRecordFound when it fails them).',
      in: { uid: t.optional(t.int), userName: t.optional(t.string), ...filters('uidMin', 'uidMax'), service: t.optional(t.string) },
      out: { record: t.object, incomplete: t.optional(t.bool) },
    },
    GetGroupRecord: {
      doc: 'The group record of gid, else of groupName; as GetUserRecord.',
      in: { gid: t.optional(t.int), groupName: t.optional(t.string), ...filters('gidMin', 'gidMax'), service: t.optional(t.string) },
      out: { record: t.object, incomplete: t.optional(t.bool) },
    },
    GetMemberships: {
      doc: 'Container users belong to no groups: always NoRecordFound.',
      in: { userName: t.optional(t.string), groupName: t.optional(t.string), service: t.optional(t.string) },
      out: { userName: t.string, groupName: t.string },
    },
  },
  errors: errors.defs,
};

/** systemd refuses names with control characters, quotes, backslashes or DEL before looking anything up. */
const safeName = (s: string) => !/[\x00-\x1f\x7f'"\\]/.test(s);

/** A bound of uidMin/uidMax/gidMin/gidMax: any 32-bit value, even ones that are no valid ID (65535). */
const validBound = (v: number) => Number.isSafeInteger(v) && v >= 0 && v <= 0xffffffff;

/** Parameter checks first, then the service check, as machined. */
function checkParams(p: Record<string, unknown>, ids: string[], names: string[], bounds: string[] = []): void {
  for (const k of ids) if (p[k] !== undefined && !validId(p[k] as number)) throw invalidParameter(k);
  for (const k of bounds) if (p[k] !== undefined && !validBound(p[k] as number)) throw invalidParameter(k);
  for (const k of names) if (p[k] !== undefined && !safeName(p[k] as string)) throw invalidParameter(k);
  if (p.service !== SERVICE) throw err('BadService');
}

/** How one kind of record is found: by ID, by name, and the name of a record. */
interface Finder<R> {
  byId(id: number): R | undefined;
  byName(name: string): R | undefined;
  nameOf(r: R): string;
}

/** The machined lookup order: ID before name, no enumeration, conflicts, then the newer clients' filters. */
function lookup<R extends UserRecord | GroupRecord>(find: Finder<R>, id: number | undefined, name: string | undefined, match: RecordMatch): { record: R } {
  if (id === undefined && name === undefined) throw err('EnumerationNotSupported');
  const record = id !== undefined ? find.byId(id) : find.byName(name!);
  if (!record) throw noRecordFound();
  if (name !== undefined && find.nameOf(record) !== name) throw err('ConflictingRecordFound');
  if (!recordMatches(record, match)) throw err('NonMatchingRecordFound');
  return { record };
}

export function userDatabaseHandlers(records: UserRecords): Record<string, Handler> {
  const users: Finder<UserRecord> = {
    byId: (uid) => records.userByUid(uid),
    byName: (name) => records.userByName(name),
    nameOf: (r) => r.userName,
  };
  const groups: Finder<GroupRecord> = {
    byId: (gid) => records.groupByGid(gid),
    byName: (name) => records.groupByName(name),
    nameOf: (r) => r.groupName,
  };
  return {
    GetUserRecord(p) {
      checkParams(p, ['uid'], ['userName'], ['uidMin', 'uidMax']);
      const match = { fuzzyNames: p.fuzzyNames, dispositionMask: p.dispositionMask, idMin: p.uidMin, idMax: p.uidMax };
      return lookup(users, p.uid, p.userName, match);
    },
    GetGroupRecord(p) {
      checkParams(p, ['gid'], ['groupName'], ['gidMin', 'gidMax']);
      const match = { fuzzyNames: p.fuzzyNames, dispositionMask: p.dispositionMask, idMin: p.gidMin, idMax: p.gidMax };
      return lookup(groups, p.gid, p.groupName, match);
    },
    GetMemberships(p) {
      checkParams(p, [], ['userName', 'groupName']);
      throw noRecordFound();
    },
  };
}
