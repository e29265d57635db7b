import { describe, expect, it } from "vitest";
import {
  buildExtentTree,
  encodeDevice,
  encodeDirectory,
  encodeInlineXattrs,
  encodeTime,
  encodeXattrBlock,
  extentTreeBlocks,
  packDirectory,
  toXattr,
  type Extent,
} from "./layout.js";

describe("ext4 layout", () => {
  it("encodes times with epoch bits and nanoseconds", () => {
    expect(encodeTime({ sec: 0, nsec: 0 })).toEqual([0, 0]);
    expect(encodeTime({ sec: 1700000000, nsec: 5 })).toEqual([1700000000, 20]);
    expect(encodeTime({ sec: -1, nsec: 0 })).toEqual([0xffffffff, 0]); // before 1970: plain signed seconds
    expect(encodeTime({ sec: 2 ** 31, nsec: 0 })).toEqual([0x80000000, 1]); // 2038 and later: epoch 1
    expect(encodeTime({ sec: 2 ** 32 + 7, nsec: 0 })).toEqual([7, 1]);
    expect(encodeTime({ sec: -(2 ** 40), nsec: 0 })).toEqual([0x80000000, 0]); // clamped to the range
  });

  it("encodes device numbers old-style when they fit, new-style otherwise", () => {
    expect([...encodeDevice(1, 3).subarray(0, 8)]).toEqual([3, 1, 0, 0, 0, 0, 0, 0]);
    const wide = encodeDevice(300, 70_000);
    expect(wide.readUInt32LE(0)).toBe(0);
    expect(wide.readUInt32LE(4)).toBe((70_000 & 0xff) | (300 << 8) | ((70_000 & ~0xff) << 12));
  });

  it("packs directory entries into blocks without spanning them", () => {
    // Records are 8 + name, rounded to 4: 252 bytes for a 244-byte name, 16 per block.
    expect(packDirectory(Array<number>(33).fill(244))).toEqual([16, 16, 1]);
    const entries = ["a", "bb", "ccc"].map((n, i) => ({ ino: 12 + i, name: Buffer.from(n), type: 1 }));
    const dir = encodeDirectory(entries, 2);
    expect(dir.length).toBe(8192);
    expect([dir.readUInt16LE(4), dir.readUInt16LE(12 + 4), dir.readUInt16LE(24 + 4)]).toEqual([12, 12, 4096 - 24]);
    expect([dir.readUInt32LE(4096), dir.readUInt16LE(4096 + 4)]).toEqual([0, 4096]); // the spare block: one empty entry
  });

  it("sizes and builds extent trees", () => {
    expect([4, 5, 1360, 1361].map(extentTreeBlocks)).toEqual([0, 1, 4, 6]);
    const extents: Extent[] = Array.from({ length: 1000 }, (_, i) => ({ logical: i * 2, start: 10_000 + i * 3, length: 2 }));
    const { root, nodes } = buildExtentTree(extents, [500, 501, 502]);
    expect([root.readUInt16LE(0), root.readUInt16LE(2), root.readUInt16LE(4), root.readUInt16LE(6)]).toEqual([0xf30a, 3, 4, 1]);
    expect(nodes.map((n) => [n.block, n.data.readUInt16LE(2), n.data.readUInt16LE(4), n.data.readUInt32LE(12)])).toEqual([
      [500, 340, 340, 0],
      [501, 340, 340, 680],
      [502, 320, 340, 1360],
    ]);
    expect([root.readUInt32LE(12 + 12), root.readUInt32LE(12 + 12 + 4)]).toEqual([680, 501]);
  });

  it("maps xattr names to ext4 name indexes and POSIX ACLs to ext4's format", () => {
    expect(toXattr("security.capability", Buffer.from("x"))).toMatchObject({ index: 6, name: Buffer.from("capability") });
    expect(toXattr("user.a", Buffer.from("x"))).toMatchObject({ index: 1, name: Buffer.from("a") });
    expect(toXattr("trusted.overlay.opaque", Buffer.from("y"))).toMatchObject({ index: 4 });
    expect(toXattr("system.nfs4_acl", Buffer.from("x"))).toBeUndefined();
    expect(toXattr("user.", Buffer.from("x"))).toBeUndefined();
    const acl = Buffer.from([2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 8, 0, 4, 0, 0x39, 0x30, 0, 0]);
    expect(toXattr("system.posix_acl_default", acl)).toEqual({ index: 3, name: Buffer.alloc(0), value: Buffer.from([1, 0, 0, 0, 1, 0, 6, 0, 8, 0, 4, 0, 0x39, 0x30, 0, 0]) });
    expect(() => toXattr("system.posix_acl_access", Buffer.from([1, 0, 0, 0]))).toThrow(/malformed POSIX ACL/);
  });

  it("puts xattrs in the inode when they fit, else in a block", () => {
    const capability = toXattr("security.capability", Buffer.alloc(20, 0x80))!;
    const inline = encodeInlineXattrs([capability])!;
    expect(inline.length).toBe(96);
    expect([inline.readUInt32LE(0), inline[4], inline[5], inline.readUInt16LE(6), inline.readUInt32LE(12)]).toEqual([0xea020000, 10, 6, 92 - 20, 20]);
    const medium = toXattr("user.medium", Buffer.alloc(100, 1))!;
    expect(encodeInlineXattrs([capability, medium])).toBeUndefined();
    const block = encodeXattrBlock([medium, capability])!;
    // Sorted by index: user (1) before security (6); values from the end of the block.
    expect([block.readUInt32LE(4), block[32], block[33], block.readUInt16LE(34)]).toEqual([1, 6, 1, 4096 - 100]);
    expect(encodeXattrBlock([toXattr("user.huge", Buffer.alloc(4096))!])).toBeUndefined();
  });
});
