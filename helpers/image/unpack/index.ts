// Flattens an image manifest's layers into one ext4 file:
// <snapshots>/<manifest-hex>/rootfs.ext4.
//
// The layers stream, in order, through the user-space ext4 writer
// (../ext4), which builds the image in a private temporary directory
// (<snapshots>/tmp-*) with no mount, no root and no staging tree on the host.
// Each layer is checked against its diff_id as it streams; the finished
// image is checked with `e2fsck -fn` and only then renamed into place, so the
// rootfs path only ever holds a complete, checked image. The temporary
// directory is removed whatever happens. Needs e2fsprogs (e2fsck) only.
//
// zstd layers are decompressed by fzstd: pure JavaScript, streaming, no
// dependencies, so it installs from npm anywhere without a native build or
// a prebuilt download (Node 20's zlib has no zstd; zstd-napi and
// @mongodb-js/zstd fetch prebuilt binaries at install time, else compile).
import { execFile } from "node:child_process";
import { createHash, type Hash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createGunzip } from "node:zlib";
import { Decompress } from "fzstd";
import { ContainerError } from "../../../lib/errors/index.js";
import type { Logger } from "../../../lib/log/index.js";
import { digestHex, type ContentStore } from "../content/index.js";
import { Ext4Writer } from "../ext4/index.js";
import { layerCompression, type Descriptor } from "../oci.js";

const run = promisify(execFile);

export const DEFAULT_MAX_UNPACKED_BYTES = 32 * 1024 ** 3;
const MiB = 1024 * 1024;
/**
 * A compressed layer may inflate to at most this many times its declared
 * size, or DEFAULT_EXPANSION_FLOOR, whichever is more: real layers inflate
 * 2-10x; a gzip bomb reaches 1000x, a zstd one far more.
 */
export const DEFAULT_MAX_EXPANSION = 200;
export const DEFAULT_EXPANSION_FLOOR = 1024 * MiB;

export interface UnpackRequest {
  content: ContentStore;
  snapshotsDir: string;
  manifestDigest: string;
  layers: Descriptor[];
  /** The config's rootfs.diff_ids: the sha256 of each uncompressed layer. */
  diffIds: string[];
  /** Cap on the file bytes the layers may write (default 32 GiB). */
  maxBytes?: number;
  /** Cap on one compressed layer's inflated bytes: max(size × ratio, floor) (see DEFAULT_MAX_EXPANSION). */
  expansion?: { ratio: number; floor: number };
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
    const image = path.join(tmp, "rootfs.ext4");
    const writer = await Ext4Writer.create(image, { maxBytes: req.maxBytes ?? DEFAULT_MAX_UNPACKED_BYTES, logger: req.logger });
    const expansion = req.expansion ?? { ratio: DEFAULT_MAX_EXPANSION, floor: DEFAULT_EXPANSION_FLOOR };
    let summary;
    try {
      for (const [i, layer] of req.layers.entries()) {
        const name = `${i + 1}/${req.layers.length} (${layer.digest.slice(7, 19)})`;
        const hash = createHash("sha256");
        await writer.addLayer(hashed(layerStream(req.content, layer, name, expansion), hash), name);
        const diffId = `sha256:${hash.digest("hex")}`;
        if (diffId !== req.diffIds[i]) {
          throw new ContainerError("invalidArgument", `layer ${name} does not match its diff_id in the image config (got ${diffId})`);
        }
      }
      summary = await writer.finish();
    } finally {
      await writer.close();
    }
    await check(image);
    await fs.mkdir(path.dirname(final), { recursive: true });
    await fs.rename(image, final);
    req.logger.info("rootfs unpacked", {
      manifest: req.manifestDigest,
      layers: req.layers.length,
      bytes: summary.contentBytes,
      inodes: summary.inodes,
      size: summary.imageBytes,
      ms: Date.now() - started,
    });
    return final;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** The layer's uncompressed bytes; a compressed one stops at its expansion cap. */
function layerStream(content: ContentStore, layer: Descriptor, name: string, expansion: { ratio: number; floor: number }): AsyncIterable<Buffer> {
  const compression = layerCompression(layer.mediaType);
  if (compression === undefined) throw new ContainerError("invalidArgument", `layer ${name} has unsupported media type ${layer.mediaType}`);
  const raw = content.openRead(layer.digest);
  if (compression === "none") return raw;
  const limit = Math.max(layer.size * expansion.ratio, expansion.floor);
  if (compression === "zstd") return capped(unzstd(raw, name), limit, layer, name);
  const gunzip = createGunzip();
  // Errors travel both ways: a failed read destroys gunzip, and so does the consumer giving up.
  pipeline(raw, gunzip).catch(() => undefined);
  return capped(gunzip, limit, layer, name);
}

/** Refuses a layer that inflates past `limit` bytes: a decompression bomb, or a descriptor that lies about its size. */
async function* capped(source: AsyncIterable<Buffer>, limit: number, layer: Descriptor, name: string): AsyncIterable<Buffer> {
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > limit) {
      throw new ContainerError("invalidArgument", `layer ${name} inflates to more than ${limit} bytes from ${layer.size}: refusing a decompression bomb`);
    }
    yield chunk;
  }
}

/** zstd frames (one or more) decompressed as they stream, by fzstd. */
async function* unzstd(source: AsyncIterable<Buffer>, name: string): AsyncIterable<Buffer> {
  let out: Buffer[] = [];
  // fzstd may hand out views of a window it reuses: copy before yielding.
  const stream = new Decompress((data) => void out.push(Buffer.from(data)));
  const push = (chunk: Uint8Array, final: boolean): void => {
    try {
      stream.push(chunk, final);
    } catch (err) {
      throw new ContainerError("invalidArgument", `layer ${name} is not valid zstd: ${(err as Error).message}`, { cause: err });
    }
  };
  for await (const chunk of source) {
    push(chunk, false);
    const ready = out;
    out = [];
    yield* ready;
  }
  push(new Uint8Array(0), true);
  yield* out;
}

async function* hashed(source: AsyncIterable<Buffer>, hash: Hash): AsyncIterable<Buffer> {
  for await (const chunk of source) {
    hash.update(chunk);
    yield chunk;
  }
}

/** e2fsck -fn: cheap insurance that the writer produced a filesystem the guest can trust. */
async function check(image: string): Promise<void> {
  try {
    await run("e2fsck", ["-fn", image], { maxBuffer: 16 * MiB });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; stdout?: string };
    if (e.code === "ENOENT") {
      throw new ContainerError("unavailable", "e2fsck not found", { hint: "install e2fsprogs", cause: err });
    }
    // e2fsck prints its pass headers first; the first other line names the problem.
    const detail = `${e.stdout ?? ""}\n${e.stderr ?? ""}`.split("\n").map((l) => l.trim()).find((l) => l !== "" && !l.startsWith("Pass ") && !l.startsWith("e2fsck ")) ?? e.message;
    throw new ContainerError("internal", `the ext4 image built for the rootfs is inconsistent: ${detail}`, { cause: err });
  }
}
