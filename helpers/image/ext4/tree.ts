// The image's file tree, in memory, and the OCI changeset rules that edit it
// layer by layer: whiteouts `.wh.<name>` and opaque directories
// `.wh..wh..opq` hide only what lower layers put there; other `.wh..wh.`
// names are aufs bookkeeping and ignored.
//
// Layers are hostile input. Entries with `..` components are rejected, a
// leading `/` is read as the root, nothing is ever put below a symlink or a
// non-directory (containerd would resolve the symlink inside the root; we
// refuse), and a hard link must name an existing non-directory reached
// through real directories only.
//
// A directory entry over an existing directory replaces its metadata
// (xattrs included) and keeps its contents; directories no entry describes
// (the root, missing parents) are 0755, root-owned, timed at the build.
//
// Names are byte strings (latin1, see layer.ts). Nodes are inodes: a hard
// link is the same node under two names, and a file's blocks go back to the
// allocator (`release`) when its last name goes.
import { ContainerError } from "../../../lib/errors/index.js";
import type { Run } from "./allocator.js";
import { MAX_NAME_BYTES, type Timestamp, type Xattr } from "./layout.js";

export interface Meta {
  /** Permission bits, set-id and sticky included. */
  mode: number;
  uid: number;
  gid: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  xattrs: Xattr[];
}

interface Inode extends Meta {
  /** Inode number, given when the image is written (0 until then). */
  ino: number;
}

export interface DirNode extends Inode {
  kind: "dir";
  children: Map<string, Node>;
}

export interface FileNode extends Inode {
  kind: "file";
  links: number;
  size: number;
  /** The content's blocks, in file order. */
  runs: Run[];
}

export interface SymlinkNode extends Inode {
  kind: "symlink";
  links: number;
  target: Buffer;
}

export interface DeviceNode extends Inode {
  kind: "char" | "block";
  links: number;
  major: number;
  minor: number;
}

export interface FifoNode extends Inode {
  kind: "fifo";
  links: number;
}

export type LeafNode = FileNode | SymlinkNode | DeviceNode | FifoNode;
export type Node = DirNode | LeafNode;

/** The entry types the tree takes; the caller skips the others. */
export const ENTRY_TYPES = ["file", "contiguous-file", "directory", "symlink", "link", "character-device", "block-device", "fifo"] as const;
export type TreeEntryType = (typeof ENTRY_TYPES)[number];

export interface TreeEntry {
  name: string;
  type: TreeEntryType;
  meta: Meta;
  size: number;
  linkname: string;
  devmajor: number;
  devminor: number;
}

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
const AUFS_META = ".wh..wh.";
/** The longest symlink target: one block, less a terminating NUL. */
const MAX_SYMLINK_BYTES = 4095;
/** ext4's link count limit for a file. */
const MAX_LINKS = 65000;
/** Linux dev_t: 12-bit major, 20-bit minor. */
const MAX_MAJOR = 0xfff;
const MAX_MINOR = 0xfffff;

/** A byte-string name as text for messages. */
export function shown(name: string): string {
  return Buffer.from(name, "latin1").toString("utf8");
}

function invalid(message: string): ContainerError {
  return new ContainerError("invalidArgument", message);
}

function join(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}

function components(name: string): string[] {
  return name.split("/").filter((p) => p !== "" && p !== ".");
}

export class Tree {
  readonly root: DirNode;
  /** Inodes alive: directories, and leaves with at least one name. */
  inodes = 0;
  /** Paths the current layer put in place, with their ancestors. */
  private readonly present = new Set<string>();
  /** The directory the last entry went into: tars list a directory's entries together. */
  private lastDir: { path: string; dir: DirNode } | undefined;

  /**
   * @param now the time given to directories no entry describes (the root, missing parents)
   * @param release called with a file whose last name is gone
   */
  constructor(
    private readonly now: Timestamp,
    private readonly release: (file: FileNode) => void,
  ) {
    this.root = this.newDir();
  }

  beginLayer(): void {
    this.present.clear();
    this.lastDir = undefined;
  }

  /** Applies one entry of the current layer; returns the file node to fill for a regular file. */
  apply(e: TreeEntry, layer: string): FileNode | undefined {
    const parts = components(e.name);
    if (parts.includes("..")) throw invalid(`layer ${layer}: entry "${shown(e.name)}" has a ".." component`);
    if (parts.some((p) => p.length > MAX_NAME_BYTES)) throw invalid(`layer ${layer}: entry "${shown(e.name)}" has a name longer than ${MAX_NAME_BYTES} bytes`);
    const base = parts.pop();
    if (base === undefined) {
      if (e.type === "directory") Object.assign(this.root, e.meta);
      return undefined;
    }
    const dirPath = parts.join("/");
    const dir = this.directory(parts, dirPath, e.name, layer);
    if (base === OPAQUE) {
      this.removeLower(dir, dirPath);
      return undefined;
    }
    if (base.startsWith(AUFS_META)) return undefined;
    if (base.startsWith(WHITEOUT)) {
      const victim = base.slice(WHITEOUT.length);
      if (victim === "" || victim === "." || victim === "..") throw invalid(`layer ${layer}: bad whiteout "${shown(e.name)}"`);
      if (!this.present.has(join(dirPath, victim))) this.remove(dir, victim);
      return undefined;
    }
    this.present.add(join(dirPath, base));
    if (e.type === "directory") {
      const existing = dir.children.get(base);
      if (existing?.kind === "dir") {
        Object.assign(existing, e.meta);
      } else {
        this.remove(dir, base);
        dir.children.set(base, this.newDir(e.meta));
      }
      return undefined;
    }
    if (e.type === "link") {
      this.link(dir, base, e, layer);
      return undefined;
    }
    const node = this.leaf(e, layer);
    this.remove(dir, base);
    dir.children.set(base, node);
    this.inodes++;
    return node.kind === "file" ? node : undefined;
  }

  /** The directory `parts` (`dirPath`), made of real directories, created where missing; each is marked present. */
  private directory(parts: string[], dirPath: string, entry: string, layer: string): DirNode {
    if (this.lastDir?.path === dirPath) return this.lastDir.dir;
    let dir = this.root;
    let path = "";
    for (const part of parts) {
      path = join(path, part);
      this.present.add(path);
      const child = dir.children.get(part);
      if (child === undefined) {
        const made = this.newDir();
        dir.children.set(part, made);
        dir = made;
      } else if (child.kind === "dir") {
        dir = child;
      } else if (child.kind === "symlink") {
        throw invalid(`layer ${layer}: entry "${shown(entry)}" would be written through the symlink "${shown(path)}"`);
      } else {
        throw invalid(`layer ${layer}: entry "${shown(entry)}" is below "${shown(path)}", which is not a directory`);
      }
    }
    this.lastDir = { path: dirPath, dir };
    return dir;
  }

  private newDir(meta?: Meta): DirNode {
    this.inodes++;
    const defaults: Meta = { mode: 0o755, uid: 0, gid: 0, atime: this.now, mtime: this.now, ctime: this.now, xattrs: [] };
    return { kind: "dir", ino: 0, ...(meta ?? defaults), children: new Map() };
  }

  private leaf(e: TreeEntry, layer: string): LeafNode {
    const base = { ino: 0, links: 1, ...e.meta };
    switch (e.type) {
      case "file":
      case "contiguous-file":
        return { kind: "file", ...base, size: e.size, runs: [] };
      case "symlink": {
        const target = Buffer.from(e.linkname, "latin1");
        if (target.length === 0 || target.length > MAX_SYMLINK_BYTES) {
          throw invalid(`layer ${layer}: symlink "${shown(e.name)}" has a target of ${target.length} bytes (1 to ${MAX_SYMLINK_BYTES} allowed)`);
        }
        // Linux ignores a symlink's permissions and always shows 0777.
        return { kind: "symlink", ...base, mode: 0o777, target };
      }
      case "character-device":
      case "block-device":
        if (e.devmajor > MAX_MAJOR || e.devminor > MAX_MINOR) throw invalid(`layer ${layer}: device "${shown(e.name)}" has an impossible number ${e.devmajor}:${e.devminor}`);
        return { kind: e.type === "block-device" ? "block" : "char", ...base, major: e.devmajor, minor: e.devminor };
      case "fifo":
        return { kind: "fifo", ...base };
      case "directory":
      case "link":
        throw new RangeError(`${e.type} is not a leaf`);
    }
  }

  private link(dir: DirNode, name: string, e: TreeEntry, layer: string): void {
    const parts = components(e.linkname);
    if (parts.includes("..") || parts.length === 0) {
      throw invalid(`layer ${layer}: hard link "${shown(e.name)}" points outside the tree ("${shown(e.linkname)}")`);
    }
    const target = this.lookupLeaf(parts);
    if (target === undefined) {
      throw invalid(`layer ${layer}: hard link "${shown(e.name)}" points to "${shown(e.linkname)}", which is not a file in the tree`);
    }
    if (dir.children.get(name) === target) return;
    if (target.links >= MAX_LINKS) throw invalid(`layer ${layer}: hard link "${shown(e.name)}" gives "${shown(e.linkname)}" more than ${MAX_LINKS} links`);
    this.remove(dir, name);
    if (target.links === 0) throw invalid(`layer ${layer}: hard link "${shown(e.name)}" points into the entry it replaces`);
    target.links++;
    dir.children.set(name, target);
  }

  /** The non-directory at `parts`, reached through real directories only. */
  private lookupLeaf(parts: string[]): LeafNode | undefined {
    let node: Node | undefined = this.root;
    for (const part of parts) {
      if (node?.kind !== "dir") return undefined;
      node = node.children.get(part);
    }
    return node?.kind === "dir" ? undefined : node;
  }

  /** Unlinks `dir/name`, with everything below it. */
  private remove(dir: DirNode, name: string): void {
    const node = dir.children.get(name);
    if (node === undefined) return;
    dir.children.delete(name);
    this.lastDir = undefined;
    const stack: Node[] = [node];
    for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
      if (n.kind === "dir") {
        this.inodes--;
        for (const child of n.children.values()) stack.push(child);
      } else if (--n.links === 0) {
        this.inodes--;
        if (n.kind === "file") this.release(n);
      }
    }
  }

  /** Opaque directory: removes what lower layers put below `dir`, keeping this layer's entries. */
  private removeLower(dir: DirNode, dirPath: string): void {
    for (const [name, child] of dir.children) {
      const path = join(dirPath, name);
      if (!this.present.has(path)) this.remove(dir, name);
      else if (child.kind === "dir") this.removeLower(child, path);
    }
  }
}
