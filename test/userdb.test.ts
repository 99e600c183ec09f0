// End-to-end tests of the user and group records: the real daemon and real user-namespaced containers,
// asked over raw Varlink, through Debian's nss-systemd and userdbctl, and through our NSS module, each
// client in a private mount namespace (a tmpfs over /run/systemd holding only the daemon's userdb socket,
// and a private nsswitch.conf) so that the host's files are never touched.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VarlinkClient } from '../src/varlink/client.js';
import { VarlinkError } from '../src/varlink/errors.js';
import { NSS_LIB_DIR, type PasswdSource, type UserdbEnv, makeUserdbEnv } from './helpers/userdb-env.js';
import { type Container, makeContainer, removeAllContainers } from './helpers/container.js';
import { DAEMON, startDaemon, type Daemon } from './helpers/daemon.js';
import { killPid, run, waitFor } from './helpers/run.js';

const SERVICE = 'io.systemd.Machine';
const LONG = 'averyveryverylongname-2345'; // 26 characters: vu-<LONG>-0 is 31, the longest user name

/** The exact lines and records machined gives (reference §4.5, §4.6). */
const pwLine = (name: string, uid: number, inner: number, machine: string) =>
  `${name}:x:${uid}:65534:UID ${inner} of Container ${machine}:/:/usr/sbin/nologin`;
const userJson = (name: string, uid: number, inner: number, machine: string) =>
  `{"userName":"${name}","uid":${uid},"gid":65534,"realName":"UID ${inner} of Container ${machine}","homeDirectory":"/",` +
  `"shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}`;
const groupJson = (name: string, gid: number, inner: number, machine: string) =>
  `{"groupName":"${name}","gid":${gid},"description":"GID ${inner} of Container ${machine}","service":"io.systemd.Machine","disposition":"container"}`;

describe('userdb', () => {
  let d: Daemon;
  let client: VarlinkClient;
  let env: UserdbEnv;
  let owned: string;
  const containers = new Map<string, Container>();

  async function register(name: string, idMap?: { base: number; shift: number; range: number }[]): Promise<Container> {
    const c = await makeContainer({ idMap, hostNetwork: true });
    const r = await d.ctl(['register', name, '--leader', String(c.pid)]);
    assert.equal(r.code, 0, r.stderr);
    containers.set(name, c);
    return c;
  }

  before(async () => {
    d = await startDaemon();
    await register('web1', [{ base: 0, shift: 100000, range: 65536 }]);
    // Two lines with a gap between them, and a '-' in the machine name.
    await register('db-2', [{ base: 0, shift: 200000, range: 1000 }, { base: 1000, shift: 300000, range: 64536 }]);
    await register('plain'); // no user namespace
    await register(LONG, [{ base: 0, shift: 400000, range: 65536 }]);
    await register('foo.bar', [{ base: 0, shift: 500000, range: 65536 }]);
    env = makeUserdbEnv({ socket: d.socket, userdbSocket: join(d.userdbDir, SERVICE) });
    owned = join(d.dir, 'owned-by-web1');
    writeFileSync(owned, '');
    chownSync(owned, 100005, 100007);
    client = await VarlinkClient.connect(d.socket);
  });
  after(async () => {
    client?.close();
    env?.close();
    await removeAllContainers();
    await d?.stop();
    d?.cleanup();
  });

  const call = (method: string, params: object) => client.call(method, params);
  /** The error reply of a call that must fail. */
  async function callError(method: string, params: object, c = client): Promise<{ error: string; parameters: object }> {
    try {
      await c.call(method, params);
    } catch (e) {
      if (e instanceof VarlinkError) return { error: e.name, parameters: e.parameters };
      throw e;
    }
    assert.fail(`${method} ${JSON.stringify(params)} succeeded`);
  }
  const user = (p: object) => call('io.systemd.UserDatabase.GetUserRecord', { service: SERVICE, ...p });
  const group = (p: object) => call('io.systemd.UserDatabase.GetGroupRecord', { service: SERVICE, ...p });
  const userError = async (p: object) => (await callError('io.systemd.UserDatabase.GetUserRecord', { service: SERVICE, ...p })).error;
  const groupError = async (p: object) => (await callError('io.systemd.UserDatabase.GetGroupRecord', { service: SERVICE, ...p })).error;
  const NO_RECORD = 'io.systemd.UserDatabase.NoRecordFound';

  async function getent(source: PasswdSource, db: string, key: string): Promise<string> {
    const r = await env.run(source, ['getent', db, key]);
    assert.ok(r.code === 0 || r.code === 2, `getent ${db} ${key}: ${r.code} ${r.stderr}`);
    return r.stdout.trim();
  }

  describe('Varlink io.systemd.UserDatabase', () => {
    test('records by UID and by name are machined\'s, field for field and in order', async () => {
      assert.equal(JSON.stringify(await user({ uid: 100000 })), `{"record":${userJson('vu-web1-0', 100000, 0, 'web1')}}`);
      assert.equal(JSON.stringify(await user({ userName: 'vu-web1-0' })), `{"record":${userJson('vu-web1-0', 100000, 0, 'web1')}}`);
      assert.equal(JSON.stringify(await group({ gid: 100007 })), `{"record":${groupJson('vg-web1-7', 100007, 7, 'web1')}}`);
      assert.equal(JSON.stringify(await group({ groupName: 'vg-web1-7' })), `{"record":${groupJson('vg-web1-7', 100007, 7, 'web1')}}`);
    });

    test('the first and last ID of a range, and one past it', async () => {
      assert.equal(JSON.stringify((await user({ uid: 165535 })).record), userJson('vu-web1-65535', 165535, 65535, 'web1'));
      assert.equal(JSON.stringify((await user({ userName: 'vu-web1-65535' })).record), userJson('vu-web1-65535', 165535, 65535, 'web1'));
      assert.equal(await userError({ uid: 165536 }), NO_RECORD);
      assert.equal(await userError({ uid: 99999 }), NO_RECORD);
      assert.equal(await userError({ userName: 'vu-web1-65536' }), NO_RECORD);
      assert.equal(await groupError({ gid: 165536 }), NO_RECORD);
      assert.equal(await groupError({ groupName: 'vg-web1-65536' }), NO_RECORD);
    });

    test('host IDs below 65536 are never a container\'s', async () => {
      for (const uid of [0, 1000, 65534]) assert.equal(await userError({ uid }), NO_RECORD);
      assert.equal(await groupError({ gid: 0 }), NO_RECORD);
    });

    test('several map lines, a gap between them, and a machine name with a dash', async () => {
      assert.equal((await user({ uid: 200000 })).record.userName, 'vu-db-2-0');
      assert.equal((await user({ uid: 200999 })).record.userName, 'vu-db-2-999');
      assert.equal(await userError({ uid: 201000 }), NO_RECORD);
      assert.equal(JSON.stringify((await user({ userName: 'vu-db-2-1000' })).record), userJson('vu-db-2-1000', 300000, 1000, 'db-2'));
      assert.equal((await user({ uid: 364535 })).record.userName, 'vu-db-2-65535');
      assert.equal(await userError({ uid: 364536 }), NO_RECORD);
      assert.equal((await group({ groupName: 'vg-db-2-1001' })).record.gid, 300001);
    });

    test('overlapping maps of two containers: the range that starts first keeps the shared IDs', async () => {
      await register('lap-a', [{ base: 0, shift: 700000, range: 1000 }]);
      await register('lap-b', [{ base: 0, shift: 700500, range: 1000 }]);
      assert.equal((await user({ uid: 700600 })).record.userName, 'vu-lap-a-600');
      assert.equal((await user({ uid: 701200 })).record.userName, 'vu-lap-b-700');
      assert.equal((await user({ userName: 'vu-lap-b-700' })).record.uid, 701200);
      assert.equal(await userError({ userName: 'vu-lap-b-0' }), NO_RECORD);
      assert.equal((await group({ gid: 700500 })).record.groupName, 'vg-lap-a-500');
    });

    test('a container without a user namespace has no records (unlike machined)', async () => {
      assert.equal(await userError({ userName: 'vu-plain-0' }), NO_RECORD);
      assert.equal(await userError({ userName: 'vu-plain-100000' }), NO_RECORD);
      assert.equal(await groupError({ groupName: 'vg-plain-0' }), NO_RECORD);
    });

    test('names over 31 characters or with a dot are not synthesized', async () => {
      assert.equal(JSON.stringify((await user({ userName: `vu-${LONG}-0` })).record), userJson(`vu-${LONG}-0`, 400000, 0, LONG));
      assert.equal((await user({ uid: 400000 })).record.userName, `vu-${LONG}-0`);
      assert.equal(`vu-${LONG}-0`.length, 31);
      assert.equal(await userError({ uid: 400010 }), NO_RECORD);
      assert.equal(await userError({ userName: `vu-${LONG}-10` }), NO_RECORD);
      assert.equal(await userError({ uid: 500000 }), NO_RECORD);
      assert.equal(await userError({ userName: 'vu-foo.bar-0' }), NO_RECORD);
      assert.equal(await groupError({ gid: 500000 }), NO_RECORD);
    });

    test('names that are no record: wrong prefix, no ID, non-canonical ID, unknown machine', async () => {
      for (const userName of ['vg-web1-0', 'vu-web1', 'vu-web1-', 'vu-web1-00', 'vu-web1-+1', 'vu--0', 'vu-nosuch-0', 'root']) {
        assert.equal(await userError({ userName }), NO_RECORD, userName);
      }
      assert.equal(await groupError({ groupName: 'vu-web1-0' }), NO_RECORD);
    });

    test('service is checked first: BadService even for an unknown name, and when missing', async () => {
      for (const m of ['GetUserRecord', 'GetGroupRecord', 'GetMemberships']) {
        assert.deepEqual(await callError(`io.systemd.UserDatabase.${m}`, { service: 'io.systemd.Other' }),
          { error: 'io.systemd.UserDatabase.BadService', parameters: {} });
        assert.equal((await callError(`io.systemd.UserDatabase.${m}`, {})).error, 'io.systemd.UserDatabase.BadService');
      }
      assert.equal((await callError('io.systemd.UserDatabase.GetUserRecord', { userName: 'nosuch', service: 'x' })).error,
        'io.systemd.UserDatabase.BadService');
    });

    test('the ID wins over the name; a mismatch is ConflictingRecordFound', async () => {
      assert.equal((await user({ uid: 100001, userName: 'vu-web1-1' })).record.uid, 100001);
      assert.equal(await userError({ uid: 100001, userName: 'vu-web1-2' }), 'io.systemd.UserDatabase.ConflictingRecordFound');
      assert.equal(await userError({ uid: 165536, userName: 'vu-web1-0' }), NO_RECORD);
      assert.equal(await groupError({ gid: 100001, groupName: 'vg-db-2-1' }), 'io.systemd.UserDatabase.ConflictingRecordFound');
    });

    test('no enumeration, with or without more: one final error', async () => {
      assert.equal(await userError({}), 'io.systemd.UserDatabase.EnumerationNotSupported');
      assert.equal(await groupError({ fuzzyNames: ['web1'] }), 'io.systemd.UserDatabase.EnumerationNotSupported');
      const replies: unknown[] = [];
      await assert.rejects(async () => {
        for await (const r of client.callMore('io.systemd.UserDatabase.GetUserRecord', { service: SERVICE })) replies.push(r);
      }, { name: 'io.systemd.UserDatabase.EnumerationNotSupported' });
      assert.deepEqual(replies, []);
    });

    test('invalid IDs and names, and unknown keys, are refused as InvalidParameter', async () => {
      const invalidParam = (parameter: string) => ({ error: 'org.varlink.service.InvalidParameter', parameters: { parameter } });
      for (const uid of [-1, 65535, 4294967295, 4294967296, 1.5]) {
        assert.deepEqual(await callError('io.systemd.UserDatabase.GetUserRecord', { uid, service: SERVICE }), invalidParam('uid'), String(uid));
      }
      assert.deepEqual(await callError('io.systemd.UserDatabase.GetGroupRecord', { gid: 65535, service: SERVICE }), invalidParam('gid'));
      assert.deepEqual(await callError('io.systemd.UserDatabase.GetUserRecord', { userName: 'vu-"x', service: SERVICE }), invalidParam('userName'));
      assert.deepEqual(await callError('io.systemd.UserDatabase.GetUserRecord', { userName: 'a\nb', service: 'bad' }), invalidParam('userName'));
      assert.deepEqual(await callError('io.systemd.UserDatabase.GetUserRecord', { uid: 100000, service: SERVICE, realm: 'x' }), invalidParam('realm'));
      assert.deepEqual(await callError('io.systemd.UserDatabase.GetUserRecord', { uidMax: -5, uid: 100000, service: SERVICE }), invalidParam('uidMax'));
    });

    test('newer clients\' filters are honoured: uidMin/uidMax, dispositionMask, fuzzyNames', async () => {
      const nonMatching = 'io.systemd.UserDatabase.NonMatchingRecordFound';
      assert.equal((await user({ uid: 100000, uidMin: 100000, uidMax: 100000 })).record.uid, 100000);
      assert.equal(await userError({ uid: 100000, uidMin: 100001 }), nonMatching);
      assert.equal(await userError({ userName: 'vu-web1-0', uidMax: 99999 }), nonMatching);
      assert.equal((await group({ gid: 100000, gidMin: 60000, gidMax: 200000 })).record.gid, 100000);
      assert.equal(await groupError({ gid: 100000, gidMax: 65534 }), nonMatching);
      assert.equal((await user({ uid: 100000, dispositionMask: ['regular', 'container'] })).record.uid, 100000);
      assert.equal(await userError({ uid: 100000, dispositionMask: ['regular', 'system'] }), nonMatching);
      assert.equal((await user({ uid: 100000, fuzzyNames: ['WEB1'] })).record.uid, 100000);
      assert.equal((await user({ uid: 100000, fuzzyNames: ['nope', 'container web'] })).record.uid, 100000);
      assert.equal(await userError({ uid: 100000, fuzzyNames: ['db-2'] }), nonMatching);
      assert.equal(await userError({ uid: 165536, uidMin: 0 }), NO_RECORD);
      // Bounds are any 32-bit value, also ones that are no valid ID.
      assert.equal((await user({ uid: 100000, uidMin: 0, uidMax: 4294967295 })).record.uid, 100000);
      assert.equal(await userError({ uid: 100000, uidMax: 65535 }), nonMatching);
      assert.equal((await group({ gid: 100000, gidMin: 65535 })).record.gid, 100000);
    });

    test('GetMemberships: always NoRecordFound', async () => {
      for (const p of [{}, { userName: 'vu-web1-0' }, { groupName: 'vg-web1-0' }]) {
        assert.deepEqual(await callError('io.systemd.UserDatabase.GetMemberships', { service: SERVICE, ...p }), { error: NO_RECORD, parameters: {} });
      }
    });

    test('the userdb socket serves the same records; --userdb-dir \'\' turns it off', async () => {
      const c = await VarlinkClient.connect(join(d.userdbDir, SERVICE));
      try {
        assert.equal(JSON.stringify(await c.call('io.systemd.UserDatabase.GetUserRecord', { uid: 100000, service: SERVICE })),
          `{"record":${userJson('vu-web1-0', 100000, 0, 'web1')}}`);
      } finally {
        c.close();
      }
      // Only the userdb interface there, as on machined's socket of that name.
      const u = await VarlinkClient.connect(join(d.userdbDir, SERVICE));
      try {
        assert.deepEqual((await u.call('org.varlink.service.GetInfo')).interfaces, ['org.varlink.service', 'io.systemd.UserDatabase']);
        await assert.rejects(u.call('io.systemd.Machine.List', { name: '.host' }), { name: 'org.varlink.service.InterfaceNotFound' });
      } finally {
        u.close();
      }
      const off = await startDaemon({ args: ['--userdb-dir', ''] });
      try {
        // The daemon socket answers only once the userdb listener is settled (main.ts), so this is not early.
        assert.equal(existsSync(join(off.userdbDir, SERVICE)), false);
      } finally {
        await off.stop();
        off.cleanup();
      }
    });

    test('a userdb socket that another live server holds: the second daemon says so and stops, serving nothing; ours goes when the daemon stops', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mymachines-test-'));
      try {
        const r = await run(DAEMON, ['--runtime-dir', join(dir, 'run'), '--state-dir', join(dir, 'machines'), '--userdb-dir', d.userdbDir, '--resolve-hook-dir', '', '--machine-dir', '', '--bus', 'none']);
        const socket = join(d.userdbDir, SERVICE);
        assert.deepEqual([r.code, r.stderr], [1, `mymachinesd: cannot serve the userdb socket ${socket}: ${socket} is in use by a running server; stop whatever holds it (systemd-machined?) or start with --userdb-dir ''\n`]);
        assert.equal(existsSync(join(dir, 'run', SERVICE)), false, 'its daemon socket was not left behind');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      assert.equal((await user({ uid: 100000 })).record.userName, 'vu-web1-0');
      assert.equal(existsSync(join(d.userdbDir, SERVICE)), true);
      const third = await startDaemon();
      assert.equal(existsSync(join(third.userdbDir, SERVICE)), true);
      await third.stop();
      assert.equal(existsSync(join(third.userdbDir, SERVICE)), false);
      third.cleanup();
    });
  });

  describe('io.systemd.Machine MapFrom and MapTo', () => {
    const mapError = (method: string, p: object) => callError(`io.systemd.Machine.${method}`, p);
    const named = (error: string, message: string) => ({ error: `io.systemd.Machine.${error}`, parameters: { message } });

    test('MapFrom: inner to host IDs, through every map line, by name or by a process of the machine', async () => {
      assert.deepEqual(await call('io.systemd.Machine.MapFrom', { name: 'web1', uid: 0 }), { uid: 100000 });
      assert.deepEqual(await call('io.systemd.Machine.MapFrom', { name: 'web1', uid: 65534, gid: 5 }), { uid: 165534, gid: 100005 });
      assert.deepEqual(await call('io.systemd.Machine.MapFrom', { name: 'db-2', uid: 1001 }), { uid: 300001 });
      assert.deepEqual(await call('io.systemd.Machine.MapFrom', { name: 'db-2', gid: 999 }), { gid: 200999 });
      assert.deepEqual(await call('io.systemd.Machine.MapFrom', { pid: { pid: containers.get('db-2')!.pid }, gid: 999 }), { gid: 200999 });
      assert.deepEqual(await call('io.systemd.Machine.MapFrom', { name: 'web1' }), {});
      // As machined: a container without a user namespace maps identically.
      assert.deepEqual(await call('io.systemd.Machine.MapFrom', { name: 'plain', uid: 5 }), { uid: 5 });
    });

    test('MapFrom: machined 262\'s errors, with a message', async () => {
      assert.deepEqual(await mapError('MapFrom', { name: 'web1', uid: 65536 }), named('NoSuchUser', "Machine 'web1' maps no user ID 65536"));
      assert.deepEqual(await mapError('MapFrom', { name: 'web1', uid: 0, gid: 70000 }), named('NoSuchGroup', "Machine 'web1' maps no group ID 70000"));
      assert.deepEqual(await mapError('MapFrom', { name: 'nosuch', uid: 0 }), named('NoSuchMachine', "No machine 'nosuch' known"));
      assert.deepEqual(await mapError('MapFrom', { uid: 0 }), named('NoSuchMachine', 'No machine named: give name or pid'));
      assert.deepEqual(await mapError('MapFrom', { name: '.host', uid: 0 }), named('NotSupported', 'Mapping IDs is only supported for containers'));
      assert.deepEqual(await mapError('MapFrom', { name: 'bad_name', uid: 0 }),
        { error: 'org.varlink.service.InvalidParameter', parameters: { parameter: 'name', message: "Invalid machine name 'bad_name'" } });
      for (const uid of [65535, -1, 4294967295]) {
        assert.deepEqual(await mapError('MapFrom', { name: 'web1', uid }),
          { error: 'org.varlink.service.InvalidParameter', parameters: { parameter: 'uid', message: `Invalid UID ${uid}` } });
      }
    });

    test('MapTo: host to inner IDs and the machine', async () => {
      assert.deepEqual(await call('io.systemd.Machine.MapTo', { uid: 100005 }), { uid: 5, machineName: 'web1' });
      assert.deepEqual(await call('io.systemd.Machine.MapTo', { uid: 300010, gid: 200999 }), { uid: 1010, gid: 999, machineName: 'db-2' });
      assert.deepEqual(await call('io.systemd.Machine.MapTo', { gid: 165535 }), { gid: 65535, machineName: 'web1' });
      // MapTo is not limited by the user-name rules, as machined.
      assert.deepEqual(await call('io.systemd.Machine.MapTo', { uid: 500001 }), { uid: 1, machineName: 'foo.bar' });
    });

    test('MapTo: machined 262\'s errors, with a message', async () => {
      assert.deepEqual(await mapError('MapTo', { uid: 1000 }), named('UserInHostRange', "User 1000 belongs to the host's range"));
      assert.deepEqual(await mapError('MapTo', { uid: 100005, gid: 65534 }), named('GroupInHostRange', "Group 65534 belongs to the host's range"));
      assert.deepEqual(await mapError('MapTo', { gid: 65535 }),
        { error: 'org.varlink.service.InvalidParameter', parameters: { parameter: 'gid', message: 'Invalid GID 65535' } });
      assert.deepEqual(await mapError('MapTo', { uid: 600000 }), named('NoSuchUser', "No container's user namespace holds host user ID 600000"));
      assert.deepEqual(await mapError('MapTo', { gid: 201000 }), named('NoSuchGroup', "No container's user namespace holds host group ID 201000"));
      assert.deepEqual(await mapError('MapTo', { uid: 100005, gid: 200999 }), named('NoSuchMachine', 'UID 100005 and GID 200999 belong to different machines'));
      assert.deepEqual(await mapError('MapTo', {}), named('NoSuchMachine', 'No ID given: give uid or gid'));
      assert.deepEqual(await mapError('MapTo', { name: 'web1', uid: 100005 }), { error: 'org.varlink.service.InvalidParameter', parameters: { parameter: 'name' } });
    });
  });

  describe('nss-systemd (passwd: files systemd) and userdbctl', () => {
    test('getent passwd and group by name and by ID, first and last of a range and one past', async () => {
      assert.equal(await getent('systemd', 'passwd', 'vu-web1-0'), pwLine('vu-web1-0', 100000, 0, 'web1'));
      assert.equal(await getent('systemd', 'passwd', '100000'), pwLine('vu-web1-0', 100000, 0, 'web1'));
      assert.equal(await getent('systemd', 'passwd', '165535'), pwLine('vu-web1-65535', 165535, 65535, 'web1'));
      assert.equal(await getent('systemd', 'passwd', '165536'), '');
      assert.equal(await getent('systemd', 'passwd', 'vu-web1-65536'), '');
      assert.equal(await getent('systemd', 'group', 'vg-web1-7'), 'vg-web1-7:x:100007:');
      assert.equal(await getent('systemd', 'group', '165535'), 'vg-web1-65535:x:165535:');
      assert.equal(await getent('systemd', 'group', '165536'), '');
    });

    test('a host UID below 65536, two containers, no user namespace, long names', async () => {
      assert.equal(await getent('systemd', 'passwd', '0'), 'root:x:0:0:root:/root:/bin/bash');
      assert.equal(await getent('systemd', 'passwd', '4242'), '');
      assert.equal(await getent('systemd', 'passwd', '300000'), pwLine('vu-db-2-1000', 300000, 1000, 'db-2'));
      assert.equal(await getent('systemd', 'passwd', 'vu-db-2-0'), pwLine('vu-db-2-0', 200000, 0, 'db-2'));
      assert.equal(await getent('systemd', 'passwd', 'vu-plain-0'), '');
      assert.equal(await getent('systemd', 'passwd', `vu-${LONG}-0`), pwLine(`vu-${LONG}-0`, 400000, 0, LONG));
      assert.equal(await getent('systemd', 'passwd', '400010'), '');
      assert.equal(await getent('systemd', 'passwd', '500000'), '');
    });

    test('stat and ls name a file owned by a container UID; id names the user', async () => {
      assert.equal((await env.run('systemd', ['stat', '-c', '%U:%G', owned])).stdout, 'vu-web1-5:vg-web1-7\n');
      assert.equal((await env.run('systemd', ['id', 'vu-web1-5'])).stdout, 'uid=100005(vu-web1-5) gid=65534(nogroup) groups=65534(nogroup)\n');
      const ls = await env.run('systemd', ['ls', '-l', owned]);
      assert.match(ls.stdout, /^-\S+ 1 vu-web1-5 vg-web1-7 0 /);
    });

    test('userdbctl user and group, as text and JSON', async () => {
      const r = await env.run('systemd', ['userdbctl', `--service=${SERVICE}`, 'user', 'vu-web1-0']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^ +User name: vu-web1-0\n Disposition: container\n/);
      assert.match(r.stdout, /\n +UID: 100000\n +GID: 65534 \(nogroup\)\n +Real Name: UID 0 of Container web1\n +Directory: \/\n/);
      assert.match(r.stdout, /\n +Shell: \/usr\/sbin\/nologin\n +Locked: yes\n/);
      assert.match(r.stdout, /\n +Service: io\.systemd\.Machine\n/);
      const j = await env.run('systemd', ['userdbctl', `--service=${SERVICE}`, '--output=json', 'user', 'vu-web1-0']);
      assert.equal(j.code, 0, j.stderr);
      assert.equal(JSON.stringify(JSON.parse(j.stdout)), userJson('vu-web1-0', 100000, 0, 'web1'));
      const g = await env.run('systemd', ['userdbctl', `--service=${SERVICE}`, '--output=json', 'group', '165535']);
      assert.equal(g.code, 0, g.stderr);
      assert.equal(JSON.stringify(JSON.parse(g.stdout)), groupJson('vg-web1-65535', 165535, 65535, 'web1'));
      const miss = await env.run('systemd', ['userdbctl', `--service=${SERVICE}`, 'user', 'vu-web1-65536']);
      assert.notEqual(miss.code, 0);
    });
  });

  describe('our NSS module (passwd: files mymachines)', () => {
    test('getent passwd and group by name and by ID, first and last of a range and one past', async () => {
      assert.ok(existsSync(join(NSS_LIB_DIR, 'libnss_mymachines.so.2')), 'build the module first: make -C nss-module');
      assert.equal(await getent('mymachines', 'passwd', 'vu-web1-0'), pwLine('vu-web1-0', 100000, 0, 'web1'));
      assert.equal(await getent('mymachines', 'passwd', '100000'), pwLine('vu-web1-0', 100000, 0, 'web1'));
      assert.equal(await getent('mymachines', 'passwd', '165535'), pwLine('vu-web1-65535', 165535, 65535, 'web1'));
      assert.equal(await getent('mymachines', 'passwd', '165536'), '');
      assert.equal(await getent('mymachines', 'passwd', 'vu-web1-65536'), '');
      assert.equal(await getent('mymachines', 'group', 'vg-web1-7'), 'vg-web1-7:x:100007:');
      assert.equal(await getent('mymachines', 'group', '165535'), 'vg-web1-65535:x:165535:');
      assert.equal(await getent('mymachines', 'group', '165536'), '');
    });

    test('a host UID below 65536, two containers, no user namespace, long names', async () => {
      assert.equal(await getent('mymachines', 'passwd', '0'), 'root:x:0:0:root:/root:/bin/bash');
      assert.equal(await getent('mymachines', 'passwd', '4242'), '');
      assert.equal(await getent('mymachines', 'passwd', '300000'), pwLine('vu-db-2-1000', 300000, 1000, 'db-2'));
      assert.equal(await getent('mymachines', 'passwd', 'vu-db-2-0'), pwLine('vu-db-2-0', 200000, 0, 'db-2'));
      assert.equal(await getent('mymachines', 'passwd', 'vu-plain-0'), '');
      assert.equal(await getent('mymachines', 'passwd', `vu-${LONG}-0`), pwLine(`vu-${LONG}-0`, 400000, 0, LONG));
      assert.equal(await getent('mymachines', 'passwd', '400010'), '');
      assert.equal(await getent('mymachines', 'passwd', '500000'), '');
    });

    test('stat names a file owned by a container UID; id names the user', async () => {
      assert.equal((await env.run('mymachines', ['stat', '-c', '%U:%G', owned])).stdout, 'vu-web1-5:vg-web1-7\n');
      assert.equal((await env.run('mymachines', ['id', 'vu-web1-5'])).stdout, 'uid=100005(vu-web1-5) gid=65534(nogroup) groups=65534(nogroup)\n');
    });
  });

  test('records go with their machine', async () => {
    const c = await register('gone', [{ base: 0, shift: 600000, range: 65536 }]);
    assert.equal((await user({ userName: 'vu-gone-0' })).record.uid, 600000);
    assert.equal(await getent('systemd', 'passwd', 'vu-gone-0'), pwLine('vu-gone-0', 600000, 0, 'gone'));
    assert.equal(await getent('mymachines', 'group', '600001'), 'vg-gone-1:x:600001:');
    await c.remove();
    await waitFor('the machine to go', () => user({ uid: 600000 }).then(() => undefined, () => true));
    assert.equal(await userError({ userName: 'vu-gone-0' }), NO_RECORD);
    assert.equal(await getent('systemd', 'passwd', 'vu-gone-0'), '');
    assert.equal(await getent('mymachines', 'passwd', '600000'), '');
    assert.equal(await getent('mymachines', 'group', 'vg-gone-1'), '');
  });

  test('a container whose ID maps are written after it registered: its records come with the maps', async () => {
    // As container managers do: the user namespace exists first, its maps are written afterwards.
    const leader = spawn('unshare', ['--user', '--', 'sleep', '600'], { stdio: 'ignore' });
    try {
      const ownNs = readlinkSync('/proc/self/ns/user');
      await waitFor('the user namespace', () => (readlinkSync(`/proc/${leader.pid}/ns/user`) !== ownNs ? true : undefined));
      const r = await d.ctl(['register', 'late', '--leader', String(leader.pid)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await userError({ uid: 800000 }), NO_RECORD);
      writeFileSync(`/proc/${leader.pid}/uid_map`, '0 800000 65536\n');
      writeFileSync(`/proc/${leader.pid}/gid_map`, '0 800000 65536\n');
      await waitFor('the records', () => user({ uid: 800000 }).then((u) => u, () => undefined));
      assert.equal((await user({ userName: 'vu-late-3' })).record.uid, 800003);
      assert.equal(await getent('mymachines', 'passwd', '800000'), pwLine('vu-late-0', 800000, 0, 'late'));
      assert.equal(await getent('systemd', 'group', 'vg-late-1'), 'vg-late-1:x:800001:');
    } finally {
      killPid(leader.pid!);
    }
    await waitFor('the machine to go', () => user({ uid: 800000 }).then(() => undefined, () => true));
  });
});
