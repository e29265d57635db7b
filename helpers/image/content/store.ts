// Content-addressed blobs under <root>/blobs/sha256/<hex>. Content is first
// streamed into <root>/ingest/ while being hashed, then verified and renamed
// into place, so a blob path only ever holds complete, verified bytes.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
import { ContainerError } from "../../../lib/errors/index.js";

/** A file in the ingest area with what hashing it found. */
export interface Ingested {
  path: string;
  digest: string;
  size: number;
  /** The first bytes, to sniff compression. */
  head: Buffer;
}

const HEAD_BYTES = 8;
/** JSON documents (manifests, configs) are read whole; anything bigger is not one. */
export const MAX_DOCUMENT_BYTES = 8 * 1024 * 1024;

/** The `sha256:<hex>` digest of bytes held in memory. */
export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export function digestHex(digest: string): string {
  return digest.slice(digest.indexOf(":") + 1);
}

export class ContentStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  blobPath(digest: string): string {
    return path.join(this.root, "blobs", "sha256", digestHex(digest));
  }

  async has(digest: string): Promise<boolean> {
    try {
      await fs.access(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  /** Reads a small blob whole (manifests, configs). */
  async read(digest: string): Promise<Buffer> {
    let handle;
    try {
      handle = await fs.open(this.blobPath(digest), "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new ContainerError("notFound", `blob ${digest} is not in the content store`, { cause: err });
      }
      throw err;
    }
    try {
      const { size } = await handle.stat();
      if (size > MAX_DOCUMENT_BYTES) throw new ContainerError("invalidArgument", `blob ${digest} is too big for a JSON document`);
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }

  /** A blob's size in bytes; notFound when it is not stored. */
  async size(digest: string): Promise<number> {
    try {
      return (await fs.stat(this.blobPath(digest))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new ContainerError("notFound", `blob ${digest} is not in the content store`, { cause: err });
      }
      throw err;
    }
  }

  /** Every stored blob with its size, in no particular order. */
  async list(): Promise<{ digest: string; size: number }[]> {
    const dir = path.join(this.root, "blobs", "sha256");
    const names = await fs.readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [];
      throw err;
    });
    const blobs: { digest: string; size: number }[] = [];
    for (const name of names) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const st = await fs.stat(path.join(dir, name)).catch(() => undefined);
      if (st?.isFile()) blobs.push({ digest: `sha256:${name}`, size: st.size });
    }
    return blobs;
  }

  /** Removes a blob; nothing when it is not there. Only the garbage collector calls this. */
  async remove(digest: string): Promise<void> {
    await fs.rm(this.blobPath(digest), { force: true });
  }

  /** Removes what interrupted ingests left behind; only while nothing ingests (under the GC lock). */
  async clearIngest(): Promise<void> {
    await fs.rm(path.join(this.root, "ingest"), { recursive: true, force: true });
  }

  openRead(digest: string): Readable {
    return createReadStream(this.blobPath(digest));
  }

  /** A private directory in the ingest area; the caller removes it. */
  async ingestDir(): Promise<string> {
    const dir = path.join(this.root, "ingest");
    await fs.mkdir(dir, { recursive: true });
    return fs.mkdtemp(path.join(dir, "in-"));
  }

  /** Streams `source` into a new file in `dir`, hashing as it goes. */
  async writeIngest(dir: string, source: AsyncIterable<unknown> | Iterable<Buffer>): Promise<Ingested> {
    const file = path.join(dir, randomBytes(8).toString("hex"));
    const hash = createHash("sha256");
    let size = 0;
    let head = Buffer.alloc(0);
    await pipeline(async function* () {
      for await (const data of source) {
        const chunk = data as Buffer;
        hash.update(chunk);
        size += chunk.length;
        if (head.length < HEAD_BYTES) head = Buffer.concat([head, chunk.subarray(0, HEAD_BYTES - head.length)]);
        yield chunk;
      }
    }, createWriteStream(file, { flags: "wx", flush: true }));
    return { path: file, digest: `sha256:${hash.digest("hex")}`, size, head };
  }

  /**
   * Verifies an ingested file against what is expected of it and moves it into
   * place. On a mismatch the file is removed and nothing is stored.
   */
  async commit(file: Ingested, expected: { digest?: string; size?: number } = {}): Promise<string> {
    const mismatch =
      expected.digest !== undefined && expected.digest !== file.digest
        ? `content hashes to ${file.digest}`
        : expected.size !== undefined && expected.size !== file.size
          ? `size is ${file.size}, expected ${expected.size}`
          : undefined;
    if (mismatch !== undefined) {
      await fs.rm(file.path, { force: true });
      throw new ContainerError("invalidArgument", `blob ${expected.digest ?? file.digest} failed verification: ${mismatch}`);
    }
    const target = this.blobPath(file.digest);
    await fs.mkdir(path.dirname(target), { recursive: true });
    // Same digest, same bytes: replacing an existing blob is harmless.
    await fs.rename(file.path, target);
    return file.digest;
  }

  /** Stores bytes held in memory (a synthesised or fetched manifest), verified as commit() does. */
  async put(bytes: Buffer, expected: { digest?: string; size?: number } = {}): Promise<string> {
    const dir = await this.ingestDir();
    try {
      return await this.commit(await this.writeIngest(dir, [bytes]), expected);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }
}
