// A minimal OS tree for containers without systemd: busybox (static, from busybox-static or the busybox
// package), an os-release, users and groups of its own.
import { chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const APPLETS = ['sh', 'sleep', 'ip', 'test', '[', 'cat', 'echo', 'id', 'ls', 'stat', 'getty', 'login', 'hostname', 'touch', 'mkdir', 'sync', 'readlink', 'env', 'true'];

export interface BusyboxRootOptions {
  /** Extra lines for /etc/passwd (after root's). */
  users?: string[];
  groups?: string[];
  files?: Record<string, string>;
}

export function makeBusyboxRoot(root: string, o: BusyboxRootOptions = {}): string {
  for (const d of ['bin', 'sbin', 'etc', 'proc', 'sys', 'dev', 'dev/pts', 'tmp', 'run', 'var', 'usr/lib', 'root', 'home']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  for (const c of APPLETS) symlinkSync('busybox', join(root, 'bin', c));
  symlinkSync('../bin/busybox', join(root, 'sbin/getty'));
  writeFileSync(join(root, 'usr/lib/os-release'), 'ID=busybox\nNAME=BusyBox\n');
  symlinkSync('../usr/lib/os-release', join(root, 'etc/os-release'));
  writeFileSync(join(root, 'etc/passwd'), ['root:x:0:0:root:/root:/bin/sh', ...(o.users ?? [])].join('\n') + '\n');
  writeFileSync(join(root, 'etc/group'), ['root:x:0:', ...(o.groups ?? [])].join('\n') + '\n');
  writeFileSync(join(root, 'etc/shadow'), 'root::1::::::\n', { mode: 0o600 });
  for (const [path, text] of Object.entries(o.files ?? {})) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}
