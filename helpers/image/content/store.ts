// Content-addressed blobs under <root>/blobs/sha256/<hex>. Content is first
// streamed into <root>/ingest/ while being hashed, then verified and renamed
// into place, so a blob path only ever holds complete, verified bytes.
//
// Downloads ingest resumably (resume()): <root>/ingest/<hex>.partial keeps
// the bytes a cut-off download got, across retries and pulls, so the next
// attempt asks only for the rest. Only garbage collection (clearIngest)
// removes partials; a partial that fails verification is removed at once.
import { createHash, randomBytes, type Hash } from "node:crypto";
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

/** A blob being downloaded in <root>/ingest/<hex>.partial, held by one download at a time (see ContentStore.resume). */
export interface PartialIngest {
  /** Bytes already there: where the download goes on. */
  readonly offset: number;
  /** Whether bytes were already there when it was opened: a download resumed. */
  readonly resumed: boolean;
  /** Appends bytes that belong at `start`: `offset` goes on, 0 starts over; it stays consistent if `source` fails. */
  append(start: number, source: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void>;
  /** Verifies size and digest and moves the blob into place; on a mismatch the partial is removed and nothing is stored. */
  commit(): Promise<void>;
  /** Lets the next download of the digest in; the partial stays for it. */
  release(): Promise<void>;
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

function noSpace(err: unknown, what: string, root: string): unknown {
  if ((err as NodeJS.ErrnoException).code !== "ENOSPC") return err;
  return new ContainerError("resourceExhausted", `no space left on the device of ${root} for ${what}`, {
    hint: "free some space (container image prune), then pull again: the download goes on where it stopped",
    cause: err,
  });
}

export class ContentStore {
  readonly root: string;
  /** Downloads under way, by digest: resume() waits for the one before it. */
  private readonly downloads = new Map<string, Promise<void>>();

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

  /**
   * Opens the partial ingest of `expected.digest`, waiting while another
   * download holds it; bytes already there are hashed again (and dropped if
   * more than `expected.size`). The caller must release() it.
   */
  async resume(expected: { digest: string; size: number }): Promise<PartialIngest> {
    while (this.downloads.has(expected.digest)) await this.downloads.get(expected.digest);
    let release!: () => void;
    this.downloads.set(expected.digest, new Promise<void>((resolve) => (release = resolve)));
    const unlock = (): void => {
      this.downloads.delete(expected.digest);
      release();
    };
    try {
      const dir = path.join(this.root, "ingest");
      await fs.mkdir(dir, { recursive: true });
      const file = path.join(dir, `${digestHex(expected.digest)}.partial`);
      const handle = await fs.open(file, "a+");
      try {
        return await Partial.open(this, handle, file, expected, unlock);
      } catch (err) {
        await handle.close();
        throw err;
      }
    } catch (err) {
      unlock();
      throw noSpace(err, `blob ${expected.digest}`, this.root);
    }
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
    }, createWriteStream(file, { flags: "wx", flush: true })).catch((err: unknown) => {
      throw noSpace(err, "a blob", this.root);
    });
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

class Partial implements PartialIngest {
  private hash: Hash = createHash("sha256");
  private size = 0;
  private constructor(
    private readonly store: ContentStore,
    private readonly handle: fs.FileHandle,
    private readonly file: string,
    private readonly expected: { digest: string; size: number },
    private readonly unlock: () => void,
    readonly resumed: boolean,
  ) {}

  static async open(store: ContentStore, handle: fs.FileHandle, file: string, expected: { digest: string; size: number }, unlock: () => void): Promise<Partial> {
    const { size } = await handle.stat();
    const partial = new Partial(store, handle, file, expected, unlock, size > 0 && size <= expected.size);
    if (partial.resumed) await partial.rehash();
    else await handle.truncate(0);
    return partial;
  }

  get offset(): number {
    return this.size;
  }

  /** Hashes what the file holds, from the start: the state after a failed write is whatever reached the disk. */
  private async rehash(): Promise<void> {
    this.hash = createHash("sha256");
    this.size = 0;
    for await (const chunk of this.handle.createReadStream({ start: 0, autoClose: false })) {
      this.hash.update(chunk as Buffer);
      this.size += (chunk as Buffer).length;
    }
  }

  async append(start: number, source: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void> {
    if (start !== this.size && start !== 0) {
      throw new ContainerError("internal", `blob ${this.expected.digest}: bytes from ${start} cannot go on a partial of ${this.size}`);
    }
    if (start === 0 && this.size > 0) {
      await this.handle.truncate(0);
      this.hash = createHash("sha256");
      this.size = 0;
    }
    try {
      for await (const chunk of source) {
        // Appended (the file is open in append mode), then counted: hash and size only ever cover bytes on disk.
        await this.handle.write(chunk);
        this.hash.update(chunk);
        this.size += chunk.length;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOSPC") await this.rehash().catch(() => undefined);
      throw noSpace(err, `blob ${this.expected.digest}`, this.store.root);
    }
  }

  async commit(): Promise<void> {
    const digest = `sha256:${this.hash.copy().digest("hex")}`;
    const { digest: want, size } = this.expected;
    const mismatch = this.size !== size ? `size is ${this.size}, expected ${size}` : digest !== want ? `content hashes to ${digest}` : undefined;
    if (mismatch !== undefined) {
      await this.handle.truncate(0);
      this.hash = createHash("sha256");
      this.size = 0;
      throw new ContainerError("invalidArgument", `blob ${want} failed verification: ${mismatch}`);
    }
    await this.handle.datasync();
    const target = this.store.blobPath(want);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.rename(this.file, target);
  }

  async release(): Promise<void> {
    try {
      await this.handle.close();
      // An empty partial is no progress to keep.
      if (this.size === 0) await fs.rm(this.file, { force: true });
    } finally {
      this.unlock();
    }
  }
}
