#!/usr/bin/env zx
// Builds the init filesystem each VM boots from: a small read-only ext4 image
// holding /sbin/vminitd and the empty directories vminitd mounts on (the root
// is read-only, so mount points must exist in the image).
//   build/initfs/x86_64/initfs.ext4   (amd64 vminitd, and qemu-user for arm64
//                                      binaries: Debian's qemu-aarch64-static)
//   build/initfs/aarch64/initfs.ext4  (arm64 vminitd)
//   build/initfs/<arch>/emulators.json  {image arch: guest path} of the
//                                      emulators in that image (--platform)
//
// Usage: zx scripts/build-initfs.mjs [--arch x86_64|aarch64] [--force]
//
// Builds vminitd first (scripts/build-vminitd.mjs, itself cached). Images are
// cached in ${XDG_CACHE_HOME:-$HOME/.cache}/container-build/initfs-<arch>-<key>/
// keyed by the vminitd binary, the emulators, this script and the mke2fs version. Images are
// deterministic: fixed UUID, hash seed and timestamps.
import { $, fs, path, os, argv } from "zx";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { buildVminitd } from "./build-vminitd.mjs";

$.verbose = false;
$.quiet = true;

const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SCRIPT), "..");
const GOARCH = { x86_64: "amd64", aarch64: "arm64" };

// Directories vminitd needs in the image: its early mount points (boot
// package); /sys/fs/cgroup and /dev/pts|shm live inside sysfs and devtmpfs.
// /tmp stays empty and read-only; writable state goes under /run (tmpfs).
const DIRS = ["sbin", "proc", "sys", "dev", "run", "tmp", "usr", "usr/libexec", "usr/libexec/qemu-binfmt"];

// User-mode emulators for images of the other architecture, registered with
// binfmt_misc by vminitd when a container asks (--platform): image arch ->
// the host file (Debian's qemu-user-static) and its path in the image. The
// "-binfmt-P" name tells qemu that binfmt_misc preserves argv[0] (Debian's
// layout, vminitd/internal/binfmt).
const EMULATORS = {
  x86_64: { arm64: { from: "/usr/bin/qemu-aarch64-static", to: "usr/libexec/qemu-binfmt/aarch64-binfmt-P" } },
  aarch64: {},
};

// Fixed identity and time, for byte-identical images.
const UUID = "6b1d2e4c-0f3a-4c57-9e1a-5d7a1c2b3e4f";
const HASH_SEED = "0c4a7f2e-3b9d-4e61-8a05-7f6e2d1c9b3a";
const EPOCH = 1_700_000_000; // 2023-11-14; any fixed time will do

const log = (m) => process.stderr.write(m + "\n");

function findTool(name) {
  for (const dir of [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/sbin"]) {
    if (dir && fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  throw new Error(`${name} not found (install e2fsprogs)`);
}

async function sha256File(p) {
  return createHash("sha256").update(await fs.readFile(p)).digest("hex");
}

// Image size: the binary plus room for metadata, rounded up to whole MiB.
function imageMiB(binSize) {
  return Math.max(8, Math.ceil((binSize * 1.1) / 1048576) + 3);
}

async function buildImage({ mkfs, e2fsck, debugfs, binary, emulators, out }) {
  const staging = await fs.mkdtemp(path.join(os.tmpdir(), "initfs-"));
  try {
    for (const d of DIRS) await fs.mkdirp(path.join(staging, d));
    const files = [["sbin/vminitd", binary], ...Object.values(emulators).map((e) => [e.to, e.from])];
    for (const [to, from] of files) {
      await fs.copy(from, path.join(staging, to));
      await fs.chmod(path.join(staging, to), 0o755);
    }
    for (const d of DIRS) await fs.chmod(path.join(staging, d), d === "tmp" ? 0o1777 : 0o755);
    await fs.chmod(staging, 0o755);
    // mke2fs -d copies mtimes from the staging tree: pin them.
    for (const p of [...DIRS.map((d) => path.join(staging, d)), ...files.map(([to]) => path.join(staging, to)), staging]) {
      await fs.utimes(p, EPOCH, EPOCH);
    }
    let bytes = 0;
    for (const [, from] of files) bytes += (await fs.stat(from)).size;
    const size = imageMiB(bytes);
    await fs.remove(out);
    await $({
      // Times mke2fs itself stamps (superblock, root, lost+found).
      env: { ...process.env, E2FSPROGS_FAKE_TIME: String(EPOCH), SOURCE_DATE_EPOCH: String(EPOCH) },
    })`${mkfs} -q -F -t ext4 -b 4096 -N 64 -m 0 -L initfs -U ${UUID} -O ^has_journal -E ${`root_owner=0:0,hash_seed=${HASH_SEED},lazy_itable_init=0,nodiscard`} -d ${staging} ${out} ${`${size}M`}`;
    // mke2fs -d takes each inode's ctime from the staging tree, which we
    // cannot set: pin it with debugfs.
    const stamp = new Date(EPOCH * 1000).toISOString().replace(/[-:T]/g, "").slice(0, 14);
    const cmds = ["/", ...DIRS.map((d) => `/${d}`), ...files.map(([to]) => `/${to}`)].map((p) => `set_inode_field ${p} ctime ${stamp}`);
    await $({ input: cmds.join("\n") + "\n" })`${debugfs} -w -f - ${out}`;
    // A clean check is part of the build: a broken image must not ship.
    await $`${e2fsck} -fn ${out}`;
    return size;
  } finally {
    await fs.remove(staging);
  }
}

export async function buildInitfs({ arches = Object.keys(GOARCH), force = false } = {}) {
  const mkfs = findTool("mkfs.ext4");
  const e2fsck = findTool("e2fsck");
  const debugfs = findTool("debugfs");
  const mkfsVersion = (await $`${mkfs} -V`.nothrow()).stderr.trim().split("\n")[0];
  const scriptHash = await sha256File(SCRIPT);
  const cacheRoot = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "container-build");
  const bins = await buildVminitd({ arches: arches.map((a) => GOARCH[a]), force });
  const results = [];
  for (const arch of arches) {
    const started = Date.now();
    const bin = bins.find((b) => b.arch === GOARCH[arch]);
    const emulators = EMULATORS[arch];
    const hash = createHash("sha256").update(`${await sha256File(bin.path)}\0${scriptHash}\0${mkfsVersion}`);
    for (const e of Object.values(emulators)) {
      if (!(await fs.pathExists(e.from))) throw new Error(`${e.from} not found (apt-get install qemu-user-static)`);
      hash.update(`\0${await sha256File(e.from)}`);
    }
    const key = hash.digest("hex").slice(0, 32);
    const cacheDir = path.join(cacheRoot, `initfs-${arch}-${key}`);
    const cached = path.join(cacheDir, "initfs.ext4");
    const out = path.join(ROOT, "build", "initfs", arch, "initfs.ext4");
    const hit = !force && (await fs.pathExists(cached));
    if (!hit) {
      const tmpDir = `${cacheDir}.tmp-${process.pid}`;
      await fs.remove(tmpDir);
      await fs.mkdirp(tmpDir);
      await buildImage({ mkfs, e2fsck, debugfs, binary: bin.path, emulators, out: path.join(tmpDir, "initfs.ext4") });
      await fs.remove(cacheDir);
      await fs.rename(tmpDir, cacheDir);
    }
    await fs.mkdirp(path.dirname(out));
    await fs.copy(cached, out, { overwrite: true });
    const guestPaths = Object.fromEntries(Object.entries(emulators).map(([imageArch, e]) => [imageArch, `/${e.to}`]));
    await fs.writeFile(path.join(path.dirname(out), "emulators.json"), JSON.stringify(guestPaths) + "\n");
    const size = (await fs.stat(out)).size;
    const ms = Date.now() - started;
    log(`build-initfs: ${arch} ${hit ? "cached" : "built"} in ${ms} ms, ${(size / 1048576).toFixed(0)} MiB -> ${path.relative(ROOT, out)}`);
    results.push({ arch, path: out, size, cached: hit, ms, key });
  }
  return results;
}

const isMain = process.argv.slice(1).some((a) => path.resolve(a) === SCRIPT);
if (isMain) {
  const arch = argv.arch;
  if (arch !== undefined && !(arch in GOARCH)) {
    log(`build-initfs: unknown --arch ${arch} (want ${Object.keys(GOARCH).join(" or ")})`);
    process.exit(2);
  }
  await buildInitfs({ arches: arch ? [arch] : Object.keys(GOARCH), force: Boolean(argv.force) });
}
