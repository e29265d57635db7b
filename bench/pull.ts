// `container image pull` of a Debian minbase image (bench/debian-image.ts)
// from Debian's docker-registry on loopback, plus its unpack into the
// image's ext4 (which the apiserver does on the image's first use: here a
// `run --rm IMAGE true`, whose VM is not timed; the unpack's own time and
// byte count come from the apiserver log's "rootfs unpacked" record),
// against skopeo copy docker://… oci:… + umoci unpack + mkfs.ext4 -d of the
// same image into an ext4 of the same size, interleaved. Between runs the
// image is removed (`image rm`, which also deletes its blobs and snapshot),
// so every pull moves every byte again.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { startRegistry } from "../test/support/registry.js";
import type { TestEnv } from "../test/support/env.js";
import type { Cleanup } from "./cleanup.js";
import { ensureDebianImage } from "./debian-image.js";
import { result, timeIt, type PairResult } from "./harness.js";
import { MB, mbPerSecond, unpackRecords, type UnpackRecord } from "./parse.js";

const run = promisify(execFile);
const sh = async (cmd: string, args: string[]): Promise<void> => void (await run(cmd, args, { maxBuffer: 64 << 20 }));

interface PeerSample {
  pullMs: number;
  /** umoci unpack + mkfs.ext4 -d */
  unpackMs: number;
  /** tar -xzf of each layer + mkfs.ext4 -d */
  tarMs: number;
}

/** The layer blobs (gzip tars) of the only image in an OCI layout, in order. */
async function layoutLayers(layout: string): Promise<string[]> {
  const blob = (digest: string): string => join(layout, "blobs", ...digest.split(":"));
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  const manifestDigest = index.manifests[0]?.digest;
  if (!manifestDigest) throw new Error(`${layout}: no manifest`);
  const manifest = JSON.parse(await readFile(blob(manifestDigest), "utf8")) as { layers: { digest: string; mediaType: string }[] };
  for (const l of manifest.layers) if (!l.mediaType.endsWith("gzip")) throw new Error(`${layout}: layer ${l.digest} is ${l.mediaType}, not gzip`);
  return manifest.layers.map((l) => blob(l.digest));
}

interface OursSample {
  pullMs: number;
  unpack: UnpackRecord;
}

export async function imagePull(env: TestEnv, iterations: number, cleanup: Cleanup): Promise<PairResult[]> {
  const { archive } = await ensureDebianImage((m) => process.stderr.write(`bench: ${m}\n`), cleanup);
  const registry = await startRegistry();
  cleanup.add("the registry", () => registry.close());
  await registry.push(`oci-archive:${archive}:debian:bookworm`, "debian:bookworm");
  const ref = `${registry.host}/debian:bookworm`;
  const apiserverLog = join(env.dir, "data", "apiserver.log");
  const scratch = await mkdtemp(join(env.dir, "pull-"));
  cleanup.add(scratch, () => rm(scratch, { recursive: true, force: true }));
  cleanup.add(`image ${ref}`, () => env.cli(["image", "rm", "-f", ref]));

  const ours = async (): Promise<OursSample> => {
    const logBefore = (await readFile(apiserverLog, "utf8")).length;
    const pullMs = await timeIt(async () => {
      const r = await env.cli(["image", "pull", ref], { timeoutMs: 600_000 });
      if (r.code !== 0) throw new Error(`image pull exited ${r.code}: ${r.stderr}`);
    });
    const r = await env.cli(["run", "--rm", ref, "true"], { timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`run --rm ${ref} true exited ${r.code}: ${r.stderr}`);
    const unpack = unpackRecords((await readFile(apiserverLog, "utf8")).slice(logBefore)).at(-1);
    if (!unpack) throw new Error("no \"rootfs unpacked\" record in the apiserver log: was the image already unpacked?");
    const rmr = await env.cli(["image", "rm", ref]);
    if (rmr.code !== 0) throw new Error(`image rm exited ${rmr.code}: ${rmr.stderr}`);
    return { pullMs, unpack };
  };

  // Warm-up (registry and page cache), and the ext4 size the peer's mkfs uses.
  const warm = await ours();
  const sizeKiB = Math.ceil(warm.unpack.size / 1024);

  const mkfs = async (dir: string, image: string): Promise<void> => {
    await sh("mkfs.ext4", ["-q", "-F", "-d", dir, image, `${sizeKiB}k`]);
    if ((await stat(image)).size === 0) throw new Error("mkfs.ext4 wrote nothing");
  };
  const peer = async (): Promise<PeerSample> => {
    const layout = join(scratch, "layout");
    const bundle = join(scratch, "bundle");
    const tree = join(scratch, "tree");
    const image = join(scratch, "rootfs.ext4");
    const clean = (): Promise<unknown> => Promise.all([layout, bundle, tree, image].map((p) => rm(p, { recursive: true, force: true })));
    try {
      const pullMs = await timeIt(() => sh("skopeo", ["--insecure-policy", "copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `oci:${layout}:bookworm`]));
      const unpackMs = await timeIt(async () => {
        await sh("umoci", ["unpack", "--image", `${layout}:bookworm`, bundle]);
        await mkfs(join(bundle, "rootfs"), image);
      });
      await rm(image, { force: true });
      // The tighter floor: the layers extracted by tar (no mtree of the tree, no digest checks) and the same mkfs.
      const layers = await layoutLayers(layout);
      await mkdir(tree);
      const tarMs = await timeIt(async () => {
        for (const layer of layers) await sh("tar", ["-xzf", layer, "--numeric-owner", "-C", tree]);
        await mkfs(tree, image);
      });
      return { pullMs, unpackMs, tarMs };
    } finally {
      await clean();
    }
  };

  const o: OursSample[] = [];
  const p: PeerSample[] = [];
  for (let i = 0; i < iterations; i++) {
    p.push(await peer());
    o.push(await ours());
  }
  const bytes = warm.unpack.bytes;
  const what = `Debian bookworm minbase (${(bytes / MB).toFixed(0)} MB of files)`;
  const peerName = "skopeo copy + umoci unpack + mkfs.ext4 -d";
  return [
    result(
      { name: `image pull + unpack, ${what}, loopback registry`, floorName: peerName },
      o.map((s) => s.pullMs + s.unpack.ms),
      p.map((s) => s.pullMs + s.unpackMs),
    ),
    result({ name: "image pull alone (`container image pull`)", floorName: "skopeo copy docker://… oci:…" }, o.map((s) => s.pullMs), p.map((s) => s.pullMs)),
    result(
      { name: "unpack alone: layers → checked ext4, MB of files per s", floorName: "umoci unpack + mkfs.ext4 -d", unit: "MB/s", note: "higher is better; ours includes e2fsck -fn and the diff_id check" },
      o.map((s) => mbPerSecond(s.unpack.bytes, s.unpack.ms)),
      p.map((s) => mbPerSecond(bytes, s.unpackMs)),
    ),
    result(
      { name: "unpack alone: layers → checked ext4, MB of files per s", floorName: "tar -xzf + mkfs.ext4 -d", unit: "MB/s", note: "higher is better; the tighter floor: no digest checks" },
      o.map((s) => mbPerSecond(s.unpack.bytes, s.unpack.ms)),
      p.map((s) => mbPerSecond(bytes, s.tarMs)),
    ),
  ];
}
