#!/usr/bin/env zx
// Builds the guest kernels from Debian's linux-source package and the config
// fragments beside this script, with a content-addressed cache.
//
//   npx zx kernel-config/build.mjs [--arch x86_64|arm64|all]
//
// Output: <repo>/build/kernel/<arch>/{vmlinux|Image, config, cache-key}, where
// the kernel and config are symlinks into
// ${XDG_CACHE_HOME:-~/.cache}/container-build/kernel-<arch>-<key>/.
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { $, argv } from "zx";

$.verbose = false;

const scriptPath = fileURLToPath(import.meta.url);
const here = path.dirname(scriptPath);
const repoRoot = path.resolve(here, "..");
const outRoot = path.join(repoRoot, "build", "kernel");
const cacheRoot = path.join(
  process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"),
  "container-build",
);
const SOURCE_PKG = "linux-source-6.1";
const SOURCE_TARBALL = `/usr/src/${SOURCE_PKG}.tar.xz`;

// Cross-compile unless the host already is the target.
const hostArch = os.arch() === "x64" ? "x86_64" : os.arch();
const cross = (arch, prefix) => (hostArch === arch ? "" : prefix);
const ARCHES = {
  x86_64: {
    karch: "x86_64",
    cross: cross("x86_64", "x86_64-linux-gnu-"),
    target: "vmlinux",
    artifact: "vmlinux",
    output: "vmlinux",
    // Drops the symbol table only; PT_LOAD and PT_NOTE (with the PVH entry point) stay.
    strip: true,
  },
  arm64: {
    karch: "arm64",
    cross: cross("arm64", "aarch64-linux-gnu-"),
    target: "Image",
    artifact: "arch/arm64/boot/Image",
    output: "Image",
    strip: false,
  },
};
for (const spec of Object.values(ARCHES)) {
  spec.make = [`ARCH=${spec.karch}`, ...(spec.cross ? [`CROSS_COMPILE=${spec.cross}`] : [])];
}

const log = (arch, msg) => console.log(`[kernel ${arch}] ${msg}`);
const secs = (t0) => `${((Date.now() - t0) / 1000).toFixed(0)}s`;

async function main() {
  const want = String(argv.arch ?? "all");
  const arches = want === "all" ? Object.keys(ARCHES) : [want];
  for (const a of arches) {
    if (!ARCHES[a]) throw new Error(`unknown --arch ${a} (x86_64, arm64 or all)`);
  }
  if (!existsSync(SOURCE_TARBALL)) {
    throw new Error(`${SOURCE_TARBALL} missing: apt-get install ${SOURCE_PKG}`);
  }
  const version = (await $`dpkg-query -W -f=${"${Version}"} ${SOURCE_PKG}`).stdout.trim();
  await fs.mkdir(cacheRoot, { recursive: true });
  await removeStale();
  for (const arch of arches) await buildArch(arch, version);
}

// Our temp dirs of runs that died (Ctrl-C, OOM) end in .tmp-<pid>; drop them
// once their process is gone. A build tree is about 125 MB.
async function removeStale() {
  for (const name of await fs.readdir(cacheRoot)) {
    const m = /^(?:src|build|kernel)-.*\.tmp-(\d+)$/.exec(name);
    if (!m || isAlive(Number(m[1]))) continue;
    await fs.rm(path.join(cacheRoot, name), { recursive: true, force: true });
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === "EPERM";
  }
}

async function cacheKey(arch, version) {
  const spec = ARCHES[arch];
  const gcc = `${spec.cross}gcc`;
  const ccVersion = (await $`${gcc} --version`).stdout.split("\n")[0];
  const h = createHash("sha256");
  for (const part of [
    await fs.readFile(path.join(here, `${arch}.config`), "utf8"),
    version,
    ccVersion,
    await fs.readFile(scriptPath, "utf8"),
  ]) {
    h.update(part).update("\0");
  }
  return h.digest("hex");
}

async function buildArch(arch, version) {
  const spec = ARCHES[arch];
  const key = await cacheKey(arch, version);
  const cached = path.join(cacheRoot, `kernel-${arch}-${key}`);
  if (existsSync(path.join(cached, spec.output))) {
    log(arch, `cache hit ${key.slice(0, 12)}`);
  } else {
    log(arch, `cache miss ${key.slice(0, 12)}, building (linux-source ${version})`);
    const t0 = Date.now();
    await build(arch, spec, key, cached, await ensureSource(version));
    log(arch, `built in ${secs(t0)}`);
  }
  await publish(arch, spec, key, cached);
}

// Extracts the source tarball once per package version; later builds (any
// arch) reuse it read-only through `make O=`.
async function ensureSource(version) {
  const src = path.join(cacheRoot, `src-${version}`);
  if (existsSync(path.join(src, ".extracted"))) return src;
  if (existsSync(src)) await fs.rm(src, { recursive: true, force: true });
  const tmp = `${src}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  const t0 = Date.now();
  console.log(`[kernel] extracting ${SOURCE_TARBALL}`);
  await $`tar -xJf ${SOURCE_TARBALL} -C ${tmp} --strip-components=1`;
  await fs.writeFile(path.join(tmp, ".extracted"), `${version}\n`);
  try {
    await fs.rename(tmp, src);
  } catch (e) {
    // A concurrent run got there first; its tree is as good as ours.
    if (!existsSync(path.join(src, ".extracted"))) throw e;
    await fs.rm(tmp, { recursive: true, force: true });
  }
  console.log(`[kernel] extracted in ${secs(t0)}`);
  return src;
}

async function build(arch, spec, key, cached, src) {
  const tag = `${key.slice(0, 12)}.tmp-${process.pid}`;
  const obj = path.join(cacheRoot, `build-${arch}-${tag}`);
  const stage = path.join(cacheRoot, `kernel-${arch}-${tag}`);
  const makeLog = path.join(obj, "make.log");
  const failLog = path.join(cacheRoot, `kernel-${arch}-failed.log`);
  const fail = async (what) => {
    await fs.copyFile(makeLog, failLog).catch(() => {});
    const tail = (await $`tail -n 30 ${failLog}`.nothrow()).stdout;
    return new Error(`${arch}: ${what} failed:\n${tail}\n(full log: ${failLog})`);
  };
  const make = (...args) =>
    $({ cwd: src })`make O=${obj} ${spec.make} ${args} >>${makeLog} 2>&1`.catch(async () => {
      throw await fail(`make ${args.join(" ")}`);
    });
  await fs.rm(obj, { recursive: true, force: true });
  await fs.mkdir(obj, { recursive: true });
  try {
    const fragment = path.join(here, `${arch}.config`);
    const dotconfig = path.join(obj, ".config");
    await make("allnoconfig");
    // -m: merge only; cwd=obj keeps merge_config's temp files out of the shared source tree.
    await $({ cwd: obj })`${path.join(src, "scripts/kconfig/merge_config.sh")} -m -O ${obj} ${dotconfig} ${fragment} >>${makeLog} 2>&1`.catch(
      async () => {
        throw await fail("merge_config.sh");
      },
    );
    await make("olddefconfig");
    await checkConfig(arch, fragment, dotconfig);
    const jobs = os.availableParallelism?.() ?? os.cpus().length;
    log(arch, `config ok, make -j${jobs} ${spec.target}`);
    await make(`-j${jobs}`, spec.target);

    await fs.rm(stage, { recursive: true, force: true });
    await fs.mkdir(stage, { recursive: true });
    const out = path.join(stage, spec.output);
    await fs.copyFile(path.join(obj, spec.artifact), out);
    if (spec.strip) await $`${`${spec.cross}strip`} ${out}`;
    await fs.copyFile(dotconfig, path.join(stage, "config"));
    await fs.writeFile(path.join(stage, "cache-key"), `${key}\n`);
    try {
      await fs.rename(stage, cached);
    } catch (e) {
      // A concurrent run with the same key published first: keep its copy.
      if (!existsSync(path.join(cached, spec.output))) {
        await fs.rm(cached, { recursive: true, force: true });
        await fs.rename(stage, cached);
      }
    }
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
    await fs.rm(obj, { recursive: true, force: true });
  }
}

// Every CONFIG_X=value line of the fragment must be in the final .config
// verbatim, and every "# CONFIG_X is not set" must not have turned on:
// Kconfig silently drops symbols whose dependencies are missing.
async function checkConfig(arch, fragment, dotconfig) {
  const final = new Map();
  for (const line of (await fs.readFile(dotconfig, "utf8")).split("\n")) {
    const m = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (m) final.set(m[1], m[2]);
  }
  const missing = [];
  for (const line of (await fs.readFile(fragment, "utf8")).split("\n")) {
    let m = /^(CONFIG_\w+)=(.*)$/.exec(line.trim());
    if (m && final.get(m[1]) !== m[2]) missing.push(`${m[1]}=${m[2]} (got ${final.get(m[1]) ?? "unset"})`);
    m = /^# (CONFIG_\w+) is not set/.exec(line.trim());
    if (m && final.has(m[1])) missing.push(`${m[1]} unset (got ${final.get(m[1])})`);
  }
  if (missing.length) {
    throw new Error(`${arch}: fragment settings lost in .config:\n  ${missing.join("\n  ")}`);
  }
}

// build/kernel/<arch>/ gets symlinks into the cache (nothing is copied) and a
// real cache-key file; each entry is replaced atomically.
async function publish(arch, spec, key, cached) {
  const dir = path.join(outRoot, arch);
  await fs.mkdir(dir, { recursive: true });
  const put = async (name, fn) => {
    const tmp = path.join(dir, `.${name}.tmp-${process.pid}`);
    await fs.rm(tmp, { force: true });
    await fn(tmp);
    await fs.rename(tmp, path.join(dir, name));
  };
  await put(spec.output, (t) => fs.symlink(path.join(cached, spec.output), t));
  await put("config", (t) => fs.symlink(path.join(cached, "config"), t));
  await put("cache-key", (t) => fs.writeFile(t, `${key}\n`));
  log(arch, `-> ${path.relative(process.cwd(), path.join(dir, spec.output)) || dir}`);
}

try {
  await main();
} catch (e) {
  console.error(`[kernel] ${e.message ?? e}`);
  process.exit(1);
}
