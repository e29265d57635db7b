// Block allocation for an image whose size is only known at the end.
//
// Blocks are handed out from a frontier that only moves up, so everything
// above it has never been written (reads as zeros in the sparse image file:
// "fresh"). The frontier steps over the start of every group that holds a
// superblock backup, leaving room for the superblock and the largest group
// descriptor table the limits allow; whatever of that room the final table
// does not use ends up free. Blocks given back (a later layer deleted or
// replaced a file) go to a pool and are reused first, when one freed run can
// hold a whole request: large files stay contiguous.
import { hasSuperblockBackup } from "./layout.js";

export interface Run {
  start: number;
  length: number;
}

export interface Allocation {
  runs: Run[];
  /** True when the blocks were never written, so zeros need not be. */
  fresh: boolean;
}

export class BlockAllocator {
  /** First block never handed out. */
  private frontier = 0;
  /** Start of the next group with a superblock backup above the frontier. */
  private nextBackup = 0;
  /** Blocks in use: handed out and not given back. */
  private inUse = 0;
  private readonly pool = new FreePool();

  /**
   * @param blocksPerGroup group size
   * @param reserved blocks kept at the start of each backup group: superblock and descriptor table
   */
  constructor(
    private readonly blocksPerGroup: number,
    private readonly reserved: number,
  ) {
    this.stepOverBackup();
  }

  get used(): number {
    return this.inUse;
  }

  /** Where the frontier stands: every block at or above it is fresh. */
  get end(): number {
    return this.frontier;
  }

  /** `count` blocks: one freed run that holds them all, else fresh ones. */
  allocate(count: number): Allocation {
    const start = this.pool.take(count);
    if (start !== undefined) {
      this.inUse += count;
      return { runs: [{ start, length: count }], fresh: false };
    }
    return { runs: this.allocateFresh(count), fresh: true };
  }

  /** `count` fresh blocks, as few runs as the backup groups allow. */
  allocateFresh(count: number): Run[] {
    const runs: Run[] = [];
    while (count > 0) {
      const length = Math.min(count, this.nextBackup - this.frontier);
      const last = runs.at(-1);
      if (last && last.start + last.length === this.frontier) last.length += length;
      else runs.push({ start: this.frontier, length });
      this.frontier += length;
      this.inUse += length;
      count -= length;
      this.stepOverBackup();
    }
    return runs;
  }

  /** `count` contiguous fresh blocks (an inode table); blocks skipped to find them go to the pool. */
  allocateFreshContiguous(count: number): number {
    if (count > this.blocksPerGroup - this.reserved) throw new RangeError(`no run of ${count} blocks fits in a group`);
    if (this.frontier + count > this.nextBackup) {
      this.pool.add(this.frontier, this.nextBackup - this.frontier);
      this.frontier = this.nextBackup;
      this.stepOverBackup();
    }
    const start = this.frontier;
    this.allocateFresh(count);
    return start;
  }

  /** Gives blocks back. */
  free(runs: Run[]): void {
    for (const run of runs) {
      this.pool.add(run.start, run.length);
      this.inUse -= run.length;
    }
  }

  /**
   * The block bitmap of a filesystem of `blocks` blocks in `groups` groups,
   * one bit a block, LSB first: what is in use, each backup group's
   * superblock and `gdtBlocks` descriptor blocks, and the bits past the end.
   */
  bitmap(blocks: number, groups: number, gdtBlocks: number): Uint8Array {
    const bits = new Uint8Array((groups * this.blocksPerGroup) / 8);
    setBits(bits, 0, this.frontier, true);
    for (const [start, length] of this.pool.runs()) setBits(bits, start, start + length, false);
    for (let g = 0; g < groups; g++) {
      if (!hasSuperblockBackup(g)) continue;
      const first = g * this.blocksPerGroup;
      setBits(bits, first, Math.min(first + this.reserved, this.frontier), false);
      setBits(bits, first, first + 1 + gdtBlocks, true);
    }
    setBits(bits, blocks, groups * this.blocksPerGroup, true);
    return bits;
  }

  private stepOverBackup(): void {
    const g = Math.floor(this.frontier / this.blocksPerGroup);
    const groupStart = g * this.blocksPerGroup;
    if (hasSuperblockBackup(g) && this.frontier < groupStart + this.reserved) this.frontier = groupStart + this.reserved;
    if (this.frontier >= this.nextBackup) this.nextBackup = this.backupAfter(g);
  }

  /** Start of the first backup group after group `g`. */
  private backupAfter(g: number): number {
    let next = g + 1;
    while (!hasSuperblockBackup(next)) next++;
    return next * this.blocksPerGroup;
  }
}

/** Sets or clears bits [from, to). */
export function setBits(bits: Uint8Array, from: number, to: number, value: boolean): void {
  let i = from;
  for (; i < to && i % 8 !== 0; i++) setBit(bits, i, value);
  const wholeEnd = to - (to % 8);
  if (i < wholeEnd) {
    bits.fill(value ? 0xff : 0, i / 8, wholeEnd / 8);
    i = wholeEnd;
  }
  for (; i < to; i++) setBit(bits, i, value);
}

function setBit(bits: Uint8Array, i: number, value: boolean): void {
  if (value) bits[i >> 3]! |= 1 << (i & 7);
  else bits[i >> 3]! &= ~(1 << (i & 7));
}

/**
 * Freed runs, merged with their neighbours, findable by size: bucket k holds
 * runs of 2^k to 2^(k+1)-1 blocks.
 */
class FreePool {
  private readonly byStart = new Map<number, number>();
  private readonly byEnd = new Map<number, number>();
  private readonly buckets: Set<number>[] = [];

  add(start: number, length: number): void {
    if (length <= 0) return;
    const before = this.byEnd.get(start);
    if (before !== undefined) {
      const beforeLength = this.byStart.get(before)!;
      this.remove(before, beforeLength);
      start = before;
      length += beforeLength;
    }
    const afterLength = this.byStart.get(start + length);
    if (afterLength !== undefined) {
      this.remove(start + length, afterLength);
      length += afterLength;
    }
    this.byStart.set(start, length);
    this.byEnd.set(start + length, start);
    (this.buckets[bucket(length)] ??= new Set()).add(start);
  }

  /** The start of `count` blocks cut from one freed run, or undefined. */
  take(count: number): number | undefined {
    for (let k = bucket(count); k < this.buckets.length; k++) {
      for (const start of this.buckets[k] ?? []) {
        const length = this.byStart.get(start)!;
        if (length < count) continue;
        this.remove(start, length);
        this.add(start + count, length - count);
        return start;
      }
    }
    return undefined;
  }

  *runs(): Iterable<[number, number]> {
    yield* this.byStart;
  }

  private remove(start: number, length: number): void {
    this.byStart.delete(start);
    this.byEnd.delete(start + length);
    this.buckets[bucket(length)]!.delete(start);
  }
}

function bucket(length: number): number {
  return 31 - Math.clz32(length);
}
