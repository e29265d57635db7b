// The image the pull row moves: Debian bookworm made by `debootstrap
// --variant=minbase` from Debian's mirror, cleaned as Debian's official
// container image is (no device nodes, no apt lists or caches), one layer,
// built with umoci and exported with skopeo as an OCI archive. Cached in
// ~/.cache/container-build/debian-minbase/ (shared by every clone), keyed by
// its inputs: suite, variant, mirror, architecture, debootstrap's version and
// this file.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "../lib/paths/index.js";
import type { Cleanup } from "./cleanup.js";

const run = promisify(execFile);
const SUITE = "bookworm";
const VARIANT = "minbase";
const MIRROR = process.env.BENCH_DEBIAN_MIRROR ?? "http://deb.debian.org/debian";
const ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface DebianImage {
  /** An OCI archive (skopeo's `oci-archive:` transport), ref debian:bookworm. */
  archive: string;
}

const sh = async (cmd: string, args: string[]): Promise<string> => (await run(cmd, args, { maxBuffer: 64 << 20 })).stdout;

/** Stops the build's running tool, undoes debootstrap's mounts (proc, sys) inside `work`, then removes it, never crossing into another filesystem. */
async function removeWork(work: string, child: () => ChildProcess | undefined): Promise<void> {
  const c = child();
  if (c && c.exitCode === null && c.signalCode === null) {
    const exited = new Promise((r) => c.once("close", r));
    process.kill(-c.pid!, "SIGTERM");
    await exited;
  }
  const mounts = (await readFile("/proc/mounts", "utf8"))
    .split("\n")
    .map((l) => l.split(" ")[1] ?? "")
    .filter((m) => m.startsWith(`${work}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run("umount", ["-l", m]);
  await run("rm", ["-rf", "--one-file-system", work]);
}

export async function ensureDebianImage(log: (msg: string) => void, cleanup: Cleanup): Promise<DebianImage> {
  for (const tool of ["/usr/sbin/debootstrap", "/usr/bin/umoci", "/usr/bin/skopeo"]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing (scripts/bench.mjs installs debootstrap; the README set-up installs umoci and skopeo)`);
  }
  if (process.getuid?.() !== 0) throw new Error("debootstrap needs root to build the Debian image");
  const arch = (await sh("dpkg", ["--print-architecture"])).trim();
  const debootstrap = (await sh("dpkg-query", ["-W", "-f=${Version}", "debootstrap"])).trim();
  const source = await readFile(join(repoRoot(), "bench", "debian-image.ts"), "utf8").catch(() => "");
  const key = createHash("sha256").update(JSON.stringify({ SUITE, VARIANT, MIRROR, arch, debootstrap, source })).digest("hex");
  // Beside the kernel builds, so that every clone on this machine shares it.
  const outDir = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "container-build", `debian-${VARIANT}`);
  const archive = join(outDir, "debian-oci.tar");
  const keyFile = join(outDir, "cache-key");
  if (existsSync(archive) && (await readFile(keyFile, "utf8").catch(() => "")).trim() === key) return { archive };

  const started = Date.now();
  const work = await mkdtemp(join(tmpdir(), "bench-debian-"));
  let current: ChildProcess | undefined;
  // Each tool in its own process group, so a clean-up can stop debootstrap's children too.
  const step = (cmd: string, args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { detached: true, stdio: ["ignore", "ignore", "pipe"] });
      current = child;
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      child.on("error", reject);
      child.on("close", (code, signal) => (code === 0 ? resolve() : reject(new Error(`${cmd} failed (${signal ?? code}): ${stderr.trim()}`))));
    });
  const remove = cleanup.add(work, () => removeWork(work, () => current));
  try {
    const root = join(work, "root");
    log(`debootstrap --variant=${VARIANT} ${SUITE} from ${MIRROR} (cached afterwards)`);
    await step("debootstrap", [`--variant=${VARIANT}`, `--arch=${arch}`, SUITE, root, MIRROR]);
    await step("sh", ["-c", 'cd "$1" && rm -rf dev/* var/lib/apt/lists/* var/cache/apt/*.bin var/log/*.log tmp/*', "sh", root]);
    const layer = join(work, "layer.tar");
    await step("tar", ["--numeric-owner", "--xattrs", "-C", root, "-cf", layer, "."]);
    const layout = join(work, "layout");
    const image = `${layout}:${SUITE}`;
    await step("umoci", ["init", "--layout", layout]);
    await step("umoci", ["new", "--image", image]);
    await step("umoci", ["raw", "add-layer", "--image", image, layer]);
    await step("umoci", ["config", "--image", image, "--config.cmd=bash", `--config.env=${ENV_PATH}`, "--os", "linux", "--architecture", arch]);
    const staged = join(work, "debian-oci.tar");
    await step("skopeo", ["--insecure-policy", "copy", "--quiet", `oci:${image}`, `oci-archive:${staged}:debian:${SUITE}`]);
    // The key goes in last, so it only ever sits beside a complete archive.
    await rm(outDir, { recursive: true, force: true });
    await mkdir(outDir, { recursive: true });
    await cp(staged, archive);
    await writeFile(keyFile, key + "\n");
    log(`built ${archive} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return { archive };
  } finally {
    await remove();
  }
}
