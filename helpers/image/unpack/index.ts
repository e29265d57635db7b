// Flattens an image manifest's layers into one ext4 file:
// <snapshots>/<manifest-hex>/rootfs.ext4.
//
// Skeleton approach: apply the layers into a private staging directory
// (<snapshots>/tmp-*), build the filesystem from it with `mkfs.ext4 -d`, check
// it with `e2fsck -fn`, and rename it into place, so the rootfs path only ever
// holds a complete, checked image. The staging directory is removed whatever
// happens. Needs root (ownership) and e2fsprogs.
// Issue 4 replaces the staging directory and mkfs with a user-space ext4
// writer that streams straight from the layers.
import { execFile } from "node:child_process";
import { createHash, type Hash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createGunzip } from "node:zlib";
import { ContainerError } from "../../../lib/errors/index.js";
import type { Logger } from "../../../lib/log/index.js";
import { digestHex, type ContentStore } from "../content/index.js";
import { layerCompression, type Descriptor } from "../oci.js";
import { LayerApplier } from "./apply.js";

const run = promisify(execFile);

export const DEFAULT_MAX_UNPACKED_BYTES = 32 * 1024 ** 3;
const MiB = 1024 * 1024;
const HEADROOM = 64 * MiB;
const INODE_SIZE = 256;

export interface UnpackRequest {
  content: ContentStore;
  snapshotsDir: string;
  manifestDigest: string;
  layers: Descriptor[];
  /** The config's rootfs.diff_ids: the sha256 of each uncompressed layer. */
  diffIds: string[];
  /** Cap on the file bytes the layers may write (default 32 GiB). */
  maxBytes?: number;
  logger: Logger;
}

export function rootfsPath(snapshotsDir: string, manifestDigest: string): string {
  return path.join(snapshotsDir, digestHex(manifestDigest), "rootfs.ext4");
}

/** Builds the rootfs for a manifest and returns its path (see the file comment). */
export async function unpackRootfs(req: UnpackRequest): Promise<string> {
  const started = Date.now();
  const final = rootfsPath(req.snapshotsDir, req.manifestDigest);
  await fs.mkdir(req.snapshotsDir, { recursive: true });
  const tmp = await fs.mkdtemp(path.join(req.snapshotsDir, "tmp-"));
  try {
    const staging = path.join(tmp, "rootfs");
    await fs.mkdir(staging);
    await fs.chmod(staging, 0o755);
    const applier = new LayerApplier(staging, { maxBytes: req.maxBytes ?? DEFAULT_MAX_UNPACKED_BYTES, logger: req.logger });
    for (const [i, layer] of req.layers.entries()) {
      const name = `${i + 1}/${req.layers.length} (${layer.digest.slice(7, 19)})`;
      const hash = createHash("sha256");
      await applier.apply(hashed(layerStream(req.content, layer, name), hash), name);
      const diffId = `sha256:${hash.digest("hex")}`;
      if (diffId !== req.diffIds[i]) {
        throw new ContainerError("invalidArgument", `layer ${name} does not match its diff_id in the image config (got ${diffId})`);
      }
    }
    await applier.finish();
    const usage = await measure(staging);
    const image = path.join(tmp, "rootfs.ext4");
    await makeExt4(staging, image, usage);
    await fs.mkdir(path.dirname(final), { recursive: true });
    await fs.rename(image, final);
    req.logger.info("rootfs unpacked", {
      manifest: req.manifestDigest,
      layers: req.layers.length,
      bytes: usage.bytes,
      inodes: usage.inodes,
      ms: Date.now() - started,
    });
    return final;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** The layer's uncompressed bytes. */
function layerStream(content: ContentStore, layer: Descriptor, name: string): AsyncIterable<Buffer> {
  const compression = layerCompression(layer.mediaType);
  if (compression === "zstd") {
    throw new ContainerError("unsupported", `layer ${name} is zstd-compressed, which is not supported yet`);
  }
  if (compression === undefined) throw new ContainerError("invalidArgument", `layer ${name} has unsupported media type ${layer.mediaType}`);
  const raw = content.openRead(layer.digest);
  if (compression === "none") return raw;
  const gunzip = createGunzip();
  // Errors travel both ways: a failed read destroys gunzip, and so does the consumer giving up.
  pipeline(raw, gunzip).catch(() => undefined);
  return gunzip;
}

async function* hashed(source: AsyncIterable<Buffer>, hash: Hash): AsyncIterable<Buffer> {
  for await (const chunk of source) {
    hash.update(chunk);
    yield chunk;
  }
}

interface Usage {
  /** Allocated bytes, each inode counted once. */
  bytes: number;
  inodes: number;
}

async function measure(root: string): Promise<Usage> {
  const seen = new Set<number>();
  const usage: Usage = { bytes: 0, inodes: 0 };
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      const st = await fs.lstat(p);
      if (!seen.has(st.ino)) {
        seen.add(st.ino);
        usage.inodes++;
        usage.bytes += st.blocks * 512;
      }
      if (entry.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return usage;
}

/**
 * Size: used bytes * 1.5 + 64 MiB, plus the inode tables (mkfs.ext4 sizes them
 * from -N, which tracks the file count so small-file trees fit). Sparse file.
 */
async function makeExt4(staging: string, image: string, usage: Usage): Promise<void> {
  const inodes = Math.ceil(usage.inodes * 1.5) + 16384;
  const size = Math.ceil((usage.bytes * 1.5 + inodes * INODE_SIZE + HEADROOM) / MiB) * MiB;
  await fs.writeFile(image, "");
  await fs.truncate(image, size);
  // -b 4096: mke2fs would pick 1 KiB blocks for small filesystems. -m 0: no
  // blocks reserved for root, it is a container's filesystem.
  await tool("mkfs.ext4", ["-q", "-F", "-b", "4096", "-m", "0", "-N", String(inodes), "-E", "root_owner=0:0", "-d", staging, image, `${size / 1024}k`]);
  await tool("e2fsck", ["-fn", image]);
}

async function tool(command: string, args: string[]): Promise<void> {
  try {
    await run(command, args, { maxBuffer: 16 * MiB });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; stdout?: string };
    if (e.code === "ENOENT") {
      throw new ContainerError("unavailable", `${command} not found`, { hint: "install e2fsprogs", cause: err });
    }
    const detail = `${e.stderr ?? ""}\n${e.stdout ?? ""}`.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? e.message;
    throw new ContainerError("internal", `${command} failed building the rootfs: ${detail}`, { cause: err });
  }
}
