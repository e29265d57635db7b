// Everything but file content, written once every layer is in: inode
// numbers, directories, extent trees, xattr blocks, the filesystem's size,
// inode tables, bitmaps, group descriptors, superblocks and the journal.
//
// Order matters because the size is chosen here: first an upper bound on
// the metadata blocks still to come, then the geometry (group count, inodes
// per group), then the fixed-size parts (journal, bitmaps, inode tables) from
// fresh space, then the inodes one group at a time (placing each directory,
// long symlink, xattr block and extent tree block as its inode is encoded),
// and last the bitmaps and descriptors, which describe all of that.
import { ContainerError } from "../../../lib/errors/index.js";
import { setBits, type Allocation, type BlockAllocator, type Run } from "./allocator.js";
import type { BlockFile } from "./blockfile.js";
import {
  BLOCK_SIZE,
  DESCS_PER_BLOCK,
  EXTENTS_FL,
  FAST_SYMLINK_MAX,
  FIRST_INO,
  FT,
  GROUP_DESC_SIZE,
  INODE_SIZE,
  INODES_PER_BLOCK,
  JOURNAL_INO,
  MAX_DIR_LINKS,
  MAX_EXTENT_BLOCKS,
  ROOT_INO,
  S_IF,
  buildExtentTree,
  encodeDevice,
  encodeDirectory,
  encodeGroupDesc,
  encodeInlineXattrs,
  encodeInode,
  encodeJournalSuperblock,
  encodeSuperblock,
  encodeXattrBlock,
  extentTreeBlocks,
  hasSuperblockBackup,
  packDirectory,
  type DirEntry,
  type Extent,
  type InodeFields,
  type Timestamp,
} from "./layout.js";
import type { DirNode, Node, Tree } from "./tree.js";

const MIB_BLOCKS = (1024 * 1024) / BLOCK_SIZE;
/** Free space every image gets on top of its content. */
const HEADROOM_BLOCKS = 64 * MIB_BLOCKS;
const LOST_FOUND = "lost+found";
/** As mke2fs: room for e2fsck to reconnect files without allocating. */
const LOST_FOUND_BLOCKS = 4;
const MAX_BLOCKS = 2 ** 32 - 1;

export interface Volume {
  blocksPerGroup: number;
  /** Blocks kept at the start of each backup group (see BlockAllocator). */
  reserved: number;
  uuid: Buffer;
  hashSeed: Buffer;
  now: Timestamp;
}

export interface Written {
  /** Filesystem size in blocks. */
  blocks: number;
  /** Highest inode number in use. */
  inodes: number;
}

function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

/** Journal size by filesystem size, in the steps mke2fs uses for the small end. */
function journalBlocks(blocks: number): number {
  if (blocks < 32768) return 1024; // < 128 MiB: 4 MiB
  if (blocks < 262144) return 4096; // < 1 GiB: 16 MiB
  if (blocks < 4194304) return 16384; // < 16 GiB: 64 MiB
  return 32768;
}

/**
 * The size policy: content blocks * 1.5, the inode tables (1.5 times the
 * inodes used, plus 16384), the journal and 64 MiB of headroom, in whole MiB.
 * The image file is sparse, so free space costs nothing on the host.
 */
function sizePolicy(contentBlocks: number, inodes: number): { blocks: number; inodes: number; journal: number } {
  const wantInodes = Math.ceil(inodes * 1.5) + 16384;
  const base = Math.ceil(contentBlocks * 1.5 + (wantInodes * INODE_SIZE) / BLOCK_SIZE) + HEADROOM_BLOCKS;
  const journal = journalBlocks(base);
  return { blocks: roundUp(base + journal, MIB_BLOCKS), inodes: wantInodes, journal };
}

/** Inodes per group: at most one bitmap block's worth, and a table that fits between backups. */
function maxInodesPerGroup(blocksPerGroup: number, reserved: number): number {
  return Math.min(BLOCK_SIZE * 8, INODES_PER_BLOCK * (blocksPerGroup - Math.max(4, reserved)));
}

/** Blocks to keep for the superblock and descriptor table of the largest image `limits` allow. */
export function descriptorReserve(limits: { maxBytes: number; maxInodes: number; blocksPerGroup: number }): number {
  // Each inode adds at most three blocks beyond its content's bytes: its
  // last, partial block (or a directory's or long symlink's block), an xattr
  // block, and its share of extent tree blocks (one per 340 extents).
  const policy = sizePolicy(Math.ceil(limits.maxBytes / BLOCK_SIZE) + 3 * limits.maxInodes, limits.maxInodes);
  const perGroupFloor = INODES_PER_BLOCK * (limits.blocksPerGroup / 2);
  const groups = 2 * (Math.ceil(policy.blocks / limits.blocksPerGroup) + Math.ceil(policy.inodes / perGroupFloor));
  return 1 + Math.ceil(groups / DESCS_PER_BLOCK);
}

interface Geometry {
  blocks: number;
  groups: number;
  inodesPerGroup: number;
  tableBlocks: number;
  journalBlocks: number;
  gdtBlocks: number;
}

export async function writeMetadata(file: BlockFile, tree: Tree, allocator: BlockAllocator, volume: Volume): Promise<Written> {
  const lostFound = addLostAndFound(tree, volume.now);
  const { byIno, parentOf } = numberInodes(tree.root);
  const inodes = byIno.length - 1;
  const minBlocks = (dir: DirNode): number => (dir === lostFound ? LOST_FOUND_BLOCKS : 1);

  let metaBound = 0;
  for (const node of byIno) if (node !== undefined) metaBound += metadataBound(node, minBlocks);
  const geometry = chooseGeometry(allocator, allocator.used + metaBound, inodes, metaBound, volume);
  const { blocks, groups, inodesPerGroup: ipg, tableBlocks, gdtBlocks } = geometry;
  if (gdtBlocks + 1 > volume.reserved || blocks > MAX_BLOCKS) {
    throw new ContainerError("resourceExhausted", `the image needs ${blocks} blocks, more than its limits allow`);
  }

  // Fixed-size parts, from fresh space.
  const journalRuns = allocator.allocateFresh(geometry.journalBlocks);
  const bitmapBlocks = blocksOf(allocator.allocateFresh(2 * groups));
  const tables = Array.from({ length: groups }, () => allocator.allocateFreshContiguous(tableBlocks));
  await file.write(journalRuns[0]!.start, encodeJournalSuperblock(geometry.journalBlocks, volume.uuid), true);

  const placeExtents = async (runs: Run[]): Promise<{ block: Buffer; treeBlocks: number }> => {
    const extents = toExtents(runs);
    const treeBlocks = extentTreeBlocks(extents.length);
    const at = treeBlocks > 0 ? allocator.allocate(treeBlocks) : { runs: [], fresh: true };
    const { root, nodes } = buildExtentTree(extents, blocksOf(at.runs));
    for (const n of nodes) await file.write(n.block, n.data, at.fresh);
    return { block: root, treeBlocks };
  };

  const placeData = async (data: Buffer): Promise<Allocation> => {
    const at = allocator.allocate(Math.ceil(data.length / BLOCK_SIZE));
    let offset = 0;
    for (const run of at.runs) {
      await file.write(run.start, data.subarray(offset, offset + run.length * BLOCK_SIZE), at.fresh);
      offset += run.length * BLOCK_SIZE;
    }
    return at;
  };

  const journal = await placeExtents(journalRuns);
  const journalInode: InodeFields = {
    mode: S_IF.file | 0o600,
    uid: 0,
    gid: 0,
    size: geometry.journalBlocks * BLOCK_SIZE,
    links: 1,
    blocks: geometry.journalBlocks + journal.treeBlocks,
    flags: EXTENTS_FL,
    block: journal.block,
    atime: volume.now,
    ctime: volume.now,
    mtime: volume.now,
    crtime: volume.now,
    xattrBlock: 0,
  };

  /** Places what the node's inode points at; returns the inode's fields that depend on it. */
  const placeBody = async (node: Node): Promise<Pick<InodeFields, "mode" | "size" | "links" | "blocks" | "flags" | "block">> => {
    switch (node.kind) {
      case "dir": {
        const entries: DirEntry[] = [
          { ino: node.ino, name: Buffer.from("."), type: FT.dir },
          { ino: parentOf.get(node)!, name: Buffer.from(".."), type: FT.dir },
        ];
        let subdirs = 0;
        for (const [name, child] of node.children) {
          entries.push({ ino: child.ino, name: Buffer.from(name, "latin1"), type: FT[child.kind] });
          if (child.kind === "dir") subdirs++;
        }
        const data = encodeDirectory(entries, minBlocks(node));
        const { block, treeBlocks } = await placeExtents((await placeData(data)).runs);
        const links = 2 + subdirs > MAX_DIR_LINKS ? 1 : 2 + subdirs;
        return { mode: S_IF.dir | node.mode, size: data.length, links, blocks: data.length / BLOCK_SIZE + treeBlocks, flags: EXTENTS_FL, block };
      }
      case "file": {
        const { block, treeBlocks } = await placeExtents(node.runs);
        const dataBlocks = node.runs.reduce((n, r) => n + r.length, 0);
        return { mode: S_IF.file | node.mode, size: node.size, links: node.links, blocks: dataBlocks + treeBlocks, flags: EXTENTS_FL, block };
      }
      case "symlink": {
        const mode = S_IF.symlink | node.mode;
        if (node.target.length <= FAST_SYMLINK_MAX) {
          const block = Buffer.alloc(60);
          node.target.copy(block);
          return { mode, size: node.target.length, links: node.links, blocks: 0, flags: 0, block };
        }
        const { block, treeBlocks } = await placeExtents((await placeData(node.target)).runs);
        return { mode, size: node.target.length, links: node.links, blocks: 1 + treeBlocks, flags: EXTENTS_FL, block };
      }
      case "char":
      case "block":
        return { mode: S_IF[node.kind] | node.mode, size: 0, links: node.links, blocks: 0, flags: 0, block: encodeDevice(node.major, node.minor) };
      case "fifo":
        return { mode: S_IF.fifo | node.mode, size: 0, links: node.links, blocks: 0, flags: 0, block: Buffer.alloc(60) };
    }
  };

  const placeNode = async (node: Node): Promise<InodeFields> => {
    let xattrBlock = 0;
    const inlineXattrs = node.xattrs.length > 0 ? encodeInlineXattrs(node.xattrs) : undefined;
    if (node.xattrs.length > 0 && inlineXattrs === undefined) {
      const data = encodeXattrBlock(node.xattrs);
      if (data === undefined) throw new ContainerError("internal", `extended attributes of inode ${node.ino} do not fit in a block`);
      xattrBlock = (await placeData(data)).runs[0]!.start;
    }
    const body = await placeBody(node);
    // Built field by field: spreading here is slow enough to show in profiles.
    return {
      mode: body.mode,
      uid: node.uid,
      gid: node.gid,
      size: body.size,
      links: body.links,
      blocks: body.blocks + (xattrBlock === 0 ? 0 : 1),
      flags: body.flags,
      block: body.block,
      atime: node.atime,
      ctime: node.ctime,
      mtime: node.mtime,
      crtime: volume.now,
      xattrBlock,
      inlineXattrs,
    };
  };

  // Inode tables: only the used part of each; the rest is fresh zeros.
  for (let g = 0; g < groups; g++) {
    const first = g * ipg + 1;
    const used = Math.min(ipg, inodes - first + 1);
    if (used <= 0) break;
    const table = Buffer.alloc(used * INODE_SIZE);
    for (let i = 0; i < used; i++) {
      const ino = first + i;
      const node = byIno[ino];
      const fields = ino === JOURNAL_INO ? journalInode : node === undefined ? undefined : await placeNode(node);
      if (fields !== undefined) encodeInode(fields, table, i * INODE_SIZE);
    }
    await file.write(tables[g]!, table, true);
  }

  if (allocator.end > blocks) throw new ContainerError("internal", `ext4 layout overflow: block ${allocator.end} of ${blocks}`);

  // Bitmaps and what they count.
  const bpg = volume.blocksPerGroup;
  const blockBits = allocator.bitmap(blocks, groups, gdtBlocks);
  const freeBlocks: number[] = [];
  for (let g = 0; g < groups; g++) {
    const bits = blockBits.subarray((g * bpg) / 8, ((g + 1) * bpg) / 8);
    freeBlocks.push(bpg - countOnes(bits));
    const bitmap = Buffer.alloc(BLOCK_SIZE);
    bitmap.set(bits);
    setBits(bitmap, bpg, BLOCK_SIZE * 8, true);
    await file.write(bitmapBlocks[g]!, bitmap, true);
  }
  const freeInodes: number[] = [];
  for (let g = 0; g < groups; g++) {
    const used = Math.max(0, Math.min(ipg, inodes - g * ipg));
    freeInodes.push(ipg - used);
    const bitmap = Buffer.alloc(BLOCK_SIZE);
    setBits(bitmap, 0, used, true);
    setBits(bitmap, ipg, BLOCK_SIZE * 8, true);
    await file.write(bitmapBlocks[groups + g]!, bitmap, true);
  }
  const dirs = new Array<number>(groups).fill(0);
  for (const node of byIno) if (node?.kind === "dir") dirs[Math.floor((node.ino - 1) / ipg)]!++;

  const gdt = Buffer.alloc(gdtBlocks * BLOCK_SIZE);
  for (let g = 0; g < groups; g++) {
    encodeGroupDesc(
      { blockBitmap: bitmapBlocks[g]!, inodeBitmap: bitmapBlocks[groups + g]!, inodeTable: tables[g]!, freeBlocks: freeBlocks[g]!, freeInodes: freeInodes[g]!, dirs: dirs[g]! },
      gdt,
      g * GROUP_DESC_SIZE,
    );
  }
  for (let g = 0; g < groups; g++) {
    if (!hasSuperblockBackup(g)) continue;
    const superblock = encodeSuperblock({
      inodes: groups * ipg,
      blocks,
      freeBlocks: freeBlocks.reduce((a, b) => a + b, 0),
      freeInodes: freeInodes.reduce((a, b) => a + b, 0),
      blocksPerGroup: bpg,
      inodesPerGroup: ipg,
      group: g,
      uuid: volume.uuid,
      hashSeed: volume.hashSeed,
      now: volume.now.sec,
      journalBlock: journal.block,
      journalSize: journalInode.size,
    });
    // The primary sits 1024 bytes into block 0; backups start their group's first block.
    const head = Buffer.alloc(BLOCK_SIZE);
    superblock.copy(head, g === 0 ? 1024 : 0);
    await file.write(g * bpg, Buffer.concat([head, gdt]), true);
  }
  return { blocks, inodes };
}

/** Adds /lost+found (e2fsck expects one) unless the layers made it; returns the directory made. */
function addLostAndFound(tree: Tree, now: Timestamp): DirNode | undefined {
  const existing = tree.root.children.get(LOST_FOUND);
  if (existing?.kind === "dir") return undefined;
  if (existing !== undefined) throw new ContainerError("invalidArgument", "the image's /lost+found is not a directory");
  const dir: DirNode = { kind: "dir", ino: 0, mode: 0o700, uid: 0, gid: 0, atime: now, mtime: now, ctime: now, xattrs: [], children: new Map() };
  tree.root.children.set(LOST_FOUND, dir);
  return dir;
}

/**
 * Inode numbers: the root 2, lost+found 11, then depth first so that a
 * directory's entries are numbered together. `byIno` has a hole for each
 * reserved inode.
 */
function numberInodes(root: DirNode): { byIno: (Node | undefined)[]; parentOf: Map<DirNode, number> } {
  const byIno: (Node | undefined)[] = new Array<Node | undefined>(FIRST_INO).fill(undefined);
  const parentOf = new Map<DirNode, number>([[root, ROOT_INO]]);
  const stack: DirNode[] = [];
  const number = (node: Node, parent: DirNode): void => {
    node.ino = byIno.length;
    byIno.push(node);
    if (node.kind === "dir") {
      parentOf.set(node, parent.ino);
      stack.push(node);
    }
  };
  root.ino = ROOT_INO;
  byIno[ROOT_INO] = root;
  const lostFound = root.children.get(LOST_FOUND)!;
  number(lostFound, root);
  stack.push(root);
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    for (const child of dir.children.values()) if (child.ino === 0) number(child, dir);
  }
  return { byIno, parentOf };
}

/** Upper bound on the blocks placeNode() allocates for `node`. */
function metadataBound(node: Node, minBlocks: (dir: DirNode) => number): number {
  const xattr = node.xattrs.length > 0 && encodeInlineXattrs(node.xattrs) === undefined ? 1 : 0;
  switch (node.kind) {
    case "dir": {
      const blocks = Math.max(minBlocks(node), packDirectory(nameLengths(node)).length);
      return blocks + extentTreeBlocks(blocks) + xattr;
    }
    case "file":
      return extentTreeBlocks(toExtents(node.runs).length) + xattr;
    case "symlink":
      return node.target.length > FAST_SYMLINK_MAX ? 1 + xattr : xattr;
    default:
      return xattr;
  }
}

function* nameLengths(dir: DirNode): Iterable<number> {
  yield 1; // .
  yield 2; // ..
  for (const name of dir.children.keys()) yield name.length;
}

function chooseGeometry(allocator: BlockAllocator, contentBlocks: number, inodes: number, metaBound: number, volume: Volume): Geometry {
  const bpg = volume.blocksPerGroup;
  const policy = sizePolicy(contentBlocks, inodes);
  const maxIpg = maxInodesPerGroup(bpg, volume.reserved);
  const minGroups = Math.ceil(policy.inodes / maxIpg);
  let blocks = Math.max(policy.blocks, roundUp((minGroups - 1) * bpg + 1, MIB_BLOCKS));
  for (;;) {
    const groups = Math.ceil(blocks / bpg);
    const inodesPerGroup = roundUp(Math.ceil(policy.inodes / groups), INODES_PER_BLOCK);
    const tableBlocks = inodesPerGroup / INODES_PER_BLOCK;
    const fixed = 2 * groups + groups * tableBlocks + policy.journal + extentTreeBlocks(policy.journal);
    // Each backup group crossed costs its reserved blocks, and at worst an
    // inode table's worth left unused before it.
    let backups = 0;
    for (let g = 0; g < groups; g++) if (hasSuperblockBackup(g)) backups++;
    const required = allocator.end + fixed + metaBound + backups * (volume.reserved + tableBlocks);
    if (required <= blocks) {
      return { blocks, groups, inodesPerGroup, tableBlocks, journalBlocks: policy.journal, gdtBlocks: Math.ceil(groups / DESCS_PER_BLOCK) };
    }
    blocks = roundUp(required, MIB_BLOCKS);
  }
}

/** Extents over runs, in file order, none longer than an extent may be. */
function toExtents(runs: Run[]): Extent[] {
  const extents: Extent[] = [];
  let logical = 0;
  for (const run of runs) {
    for (let done = 0; done < run.length; ) {
      const length = Math.min(MAX_EXTENT_BLOCKS, run.length - done);
      extents.push({ logical, start: run.start + done, length });
      logical += length;
      done += length;
    }
  }
  return extents;
}

function blocksOf(runs: Run[]): number[] {
  const blocks: number[] = [];
  for (const run of runs) for (let i = 0; i < run.length; i++) blocks.push(run.start + i);
  return blocks;
}

const ONES = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0;
  for (let b = i; b > 0; b >>= 1) n += b & 1;
  return n;
});

function countOnes(bits: Uint8Array): number {
  let n = 0;
  for (const byte of bits) n += ONES[byte]!;
  return n;
}
