import { describe, expect, it } from "vitest";
import { BlockAllocator } from "./allocator.js";
import { hasSuperblockBackup } from "./layout.js";

function bitsSet(bits: Uint8Array, from: number, to: number): boolean[] {
  return Array.from({ length: to - from }, (_, i) => (bits[(from + i) >> 3]! & (1 << ((from + i) & 7))) !== 0);
}

describe("block allocator", () => {
  it("knows the groups that hold superblock backups", () => {
    const groups = Array.from({ length: 400 }, (_, g) => g).filter(hasSuperblockBackup);
    expect(groups).toEqual([0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125, 243, 343]);
  });

  it("hands out fresh blocks in runs that step over each backup group's reserved start", () => {
    const a = new BlockAllocator(256, 4);
    expect(a.allocate(300)).toEqual({ runs: [{ start: 4, length: 252 }, { start: 260, length: 48 }], fresh: true });
    // Group 2 has no backup: runs cross into it without a gap.
    expect(a.allocate(300)).toEqual({ runs: [{ start: 308, length: 300 }], fresh: true });
    expect(a.allocate(0)).toEqual({ runs: [], fresh: true });
    expect(a.used).toBe(600);
    expect(a.end).toBe(608);
  });

  it("reuses a freed run that holds a whole request, merging neighbours, and never splits one across runs", () => {
    const a = new BlockAllocator(256, 4);
    const [first, second, third] = [a.allocate(10), a.allocate(10), a.allocate(10)];
    a.free(second.runs);
    a.free(first.runs);
    expect(a.allocate(15)).toEqual({ runs: [{ start: 4, length: 15 }], fresh: false });
    expect(a.allocate(6)).toEqual({ runs: [{ start: 34, length: 6 }], fresh: true }); // 5 freed blocks are too few
    expect(a.allocate(5)).toEqual({ runs: [{ start: 19, length: 5 }], fresh: false });
    a.free(third.runs);
    expect(a.used).toBe(26);
  });

  it("finds contiguous room for inode tables, giving the skipped blocks to the pool", () => {
    const a = new BlockAllocator(256, 4);
    a.allocate(240);
    expect(a.allocateFreshContiguous(20)).toBe(260); // 244-255 would split it
    expect(a.allocate(12)).toEqual({ runs: [{ start: 244, length: 12 }], fresh: false });
  });

  it("maps used blocks, superblocks, descriptors and the padding past the end", () => {
    const a = new BlockAllocator(256, 4);
    const runs = a.allocate(300).runs;
    a.free([{ start: 10, length: 2 }]);
    const bits = a.bitmap(600, 3, 1);
    expect(runs[0]!.start).toBe(4);
    expect(bitsSet(bits, 0, 13)).toEqual([true, true, false, false, true, true, true, true, true, true, false, false, true]);
    expect(bitsSet(bits, 256, 261)).toEqual([true, true, false, false, true]); // group 1: backup and descriptors
    expect(bitsSet(bits, 306, 310)).toEqual([true, true, false, false]);
    expect(bitsSet(bits, 598, 602)).toEqual([false, false, true, true]);
    expect(bitsSet(bits, 767, 768)).toEqual([true]);
  });
});
