// The image file, written in blocks at their offsets. Writes to consecutive
// blocks are gathered into one buffer and go out in one syscall; all-zero
// blocks that were never written before ("fresh", see allocator.ts) are left
// as holes, so the sparse file only stores what is not zero.
import fs, { type FileHandle } from "node:fs/promises";
import type { Run } from "./allocator.js";
import { BLOCK_SIZE } from "./layout.js";

const BUFFER_BLOCKS = 1024; // 4 MiB
const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

export class BlockFile {
  private readonly buffer = Buffer.alloc(BUFFER_BLOCKS * BLOCK_SIZE);
  private readonly fresh = new Uint8Array(BUFFER_BLOCKS);
  /** The buffer holds blocks [start, start + count). */
  private start = 0;
  private count = 0;

  private constructor(private readonly handle: FileHandle) {}

  /** Creates the file; it must not exist. */
  static async create(file: string): Promise<BlockFile> {
    return new BlockFile(await fs.open(file, "wx", 0o644));
  }

  /**
   * Writes `data` from block `block` on; a partial last block is padded with
   * zeros. `fresh`: the blocks were never written, so zero blocks may be skipped.
   */
  async write(block: number, data: Buffer, fresh: boolean): Promise<void> {
    const blocks = Math.ceil(data.length / BLOCK_SIZE);
    if (blocks > BUFFER_BLOCKS) {
      for (let b = 0; b < blocks; b += BUFFER_BLOCKS) {
        await this.write(block + b, data.subarray(b * BLOCK_SIZE, (b + BUFFER_BLOCKS) * BLOCK_SIZE), fresh);
      }
      return;
    }
    if (this.count > 0 && (block !== this.start + this.count || this.count + blocks > BUFFER_BLOCKS)) await this.flush();
    if (this.count === 0) this.start = block;
    const at = this.count * BLOCK_SIZE;
    data.copy(this.buffer, at);
    this.buffer.fill(0, at + data.length, at + blocks * BLOCK_SIZE);
    this.fresh.fill(fresh ? 1 : 0, this.count, this.count + blocks);
    this.count += blocks;
  }

  /** Streams `body` into `runs`, in order (a file's content into its blocks). */
  async writeRuns(body: AsyncIterable<Buffer>, runs: Run[], fresh: boolean): Promise<void> {
    let run = 0;
    let inRun = 0;
    const put = async (data: Buffer): Promise<void> => {
      for (let offset = 0; offset < data.length; ) {
        const current = runs[run];
        if (current === undefined) throw new RangeError("file data longer than its blocks");
        const length = Math.min((current.length - inRun) * BLOCK_SIZE, data.length - offset);
        await this.write(current.start + inRun, data.subarray(offset, offset + length), fresh);
        offset += length;
        inRun += Math.ceil(length / BLOCK_SIZE);
        if (inRun === current.length) {
          run++;
          inRun = 0;
        }
      }
    };
    // Partial blocks wait in `carry` until they are whole (or the data ends).
    const carry = Buffer.alloc(BLOCK_SIZE);
    let carried = 0;
    for await (const chunk of body) {
      let i = 0;
      if (carried > 0) {
        i = Math.min(BLOCK_SIZE - carried, chunk.length);
        chunk.copy(carry, carried, 0, i);
        carried += i;
        if (carried < BLOCK_SIZE) continue;
        await put(carry);
        carried = 0;
      }
      const whole = Math.floor((chunk.length - i) / BLOCK_SIZE) * BLOCK_SIZE;
      if (whole > 0) await put(chunk.subarray(i, i + whole));
      i += whole;
      if (i < chunk.length) carried = chunk.copy(carry, 0, i);
    }
    if (carried > 0) await put(carry.subarray(0, carried));
  }

  async flush(): Promise<void> {
    const skippable = (b: number): boolean => this.fresh[b] === 1 && this.buffer.subarray(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE).equals(ZERO_BLOCK);
    let b = 0;
    while (b < this.count) {
      if (skippable(b)) {
        b++;
        continue;
      }
      let end = b + 1;
      while (end < this.count && !skippable(end)) end++;
      await this.writeFully(b * BLOCK_SIZE, (end - b) * BLOCK_SIZE, (this.start + b) * BLOCK_SIZE);
      b = end;
    }
    this.count = 0;
  }

  /** Flushes, sets the file's size to `blocks` blocks (the rest a hole), syncs and closes it. */
  async finish(blocks: number): Promise<void> {
    await this.flush();
    await this.handle.truncate(blocks * BLOCK_SIZE);
    // The caller renames the image into place as complete: it must be on disk first.
    await this.handle.sync();
    await this.handle.close();
  }

  /** Closes the file without flushing (after a failure). */
  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }

  private async writeFully(offset: number, length: number, position: number): Promise<void> {
    while (length > 0) {
      const { bytesWritten } = await this.handle.write(this.buffer, offset, length, position);
      offset += bytesWritten;
      position += bytesWritten;
      length -= bytesWritten;
    }
  }
}
