#!/usr/bin/env node
// copy-runtime.js DEST: copies what mymachinesd and mymachinesctl need at run time on this machine into
// DEST (make install's $(PKGDIR)): package.json, bin/, dist/src/ and the npm packages they load.
//  - Packages: those reachable from package.json's dependencies in package-lock.json, without the ones
//    only a build needs (usocket declares node-gyp and nan as dependencies, but needs them only to
//    compile its addon, which npm ci has done by then).
//  - A package with a native addon keeps the .node files that load here and nothing else of its build
//    output, sources or build scripts: koffi ships its addon for 18 systems, of which one runs here.
//  - No package keeps what only its developers use: tests, examples, documentation sites, dot files
//    (.npmignore, .eslintrc, .gitattributes); scripts and ELF files are executable, nothing else is.
import { chmodSync, cpSync, existsSync, openSync, readFileSync, readSync, closeSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUILD_ONLY = new Set(['node-gyp', 'nan']);
const DEVELOPERS_ONLY = /(^|\/)(\.[^/]*|tests?|examples?|benchmarks?|docs?|[^/]*\.html)$/;
const SOURCE = /\.(c|cc|cpp|h|hh|hpp|inc|S|asm|def|cmake|gyp|gypi|mk|py)$|(^|\/)(Makefile|CMakeLists\.txt|binding\.gyp|src)$/;

const dest = process.argv[2];
if (!dest) {
  process.stderr.write('usage: copy-runtime.js DEST\n');
  process.exit(2);
}

const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')).packages;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

/** Where node would find package `name` required from the package at lock key `from` ('' is the root). */
function resolve(from, name) {
  for (let base = from; ; base = base.replace(/\/?node_modules\/(@[^/]+\/)?[^/]+$/, '')) {
    const key = `${base ? base + '/' : ''}node_modules/${name}`;
    if (lock[key]) return key;
    if (base === '') throw new Error(`package-lock.json has no ${name} for ${from || 'the root'}`);
  }
}

const wanted = new Set();
const walk = (key) => {
  if (wanted.has(key)) return;
  wanted.add(key);
  const e = lock[key];
  for (const name of Object.keys({ ...e.dependencies, ...e.optionalDependencies })) {
    if (BUILD_ONLY.has(name)) continue;
    const k = resolve(key, name);
    if (!lock[k].optional || existsSync(join(ROOT, k))) walk(k);
  }
};
for (const name of Object.keys(pkg.dependencies)) walk(resolve('', name));

/** The native addons each package loads here: the .node files in require's cache after loading it. */
const require = createRequire(join(ROOT, 'package.json'));
for (const name of Object.keys(pkg.dependencies)) require(name);
const addons = Object.keys(require.cache).filter((f) => f.endsWith('.node')).map((f) => relative(ROOT, f).split(sep).join('/'));

for (const key of wanted) {
  const own = addons.filter((a) => a.startsWith(key + '/') && !a.slice(key.length + 1).includes('node_modules/'));
  cpSync(join(ROOT, key), join(dest, key), {
    recursive: true,
    filter(src) {
      const rel = relative(ROOT, src).split(sep).join('/');
      const inner = rel.slice(key.length + 1);
      if (inner.startsWith('node_modules')) return false; // nested packages are copied on their own
      if (DEVELOPERS_ONLY.test(inner)) return false;
      if (own.length === 0) return true;
      if (SOURCE.test(inner)) return false;
      // Under build/: only the loaded addons and the directories that lead to them.
      if (inner === 'build' || inner.startsWith('build/')) return own.some((a) => a === rel || a.startsWith(rel + '/'));
      return !rel.endsWith('.node') || own.includes(rel);
    },
  });
}

/** An executable mode on what can be executed (a script, an ELF file) and nothing else; no directory
 *  left empty by the filters. */
function tidy(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      tidy(p);
      if (readdirSync(p).length === 0) rmSync(p, { recursive: true });
    }
    else if (e.isFile()) {
      const head = Buffer.alloc(4);
      const fd = openSync(p, 'r');
      readSync(fd, head, 0, 4, 0);
      closeSync(fd);
      const runnable = head.subarray(0, 2).equals(Buffer.from('#!')) || head.equals(Buffer.from('\x7fELF', 'latin1'));
      if (runnable !== Boolean(statSync(p).mode & 0o100)) chmodSync(p, runnable ? 0o755 : 0o644);
    }
  }
}
tidy(join(dest, 'node_modules'));

cpSync(join(ROOT, 'package.json'), join(dest, 'package.json'));
cpSync(join(ROOT, 'bin'), join(dest, 'bin'), { recursive: true });
rmSync(join(dest, 'dist'), { recursive: true, force: true });
cpSync(join(ROOT, 'dist/src'), join(dest, 'dist/src'), { recursive: true });
