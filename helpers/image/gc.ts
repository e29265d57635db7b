// Garbage collection of the content store. What the image records and the
// containers' images reach is kept: their indexes, manifests, configs and
// layers, and the flattened rootfs of each manifest. Every other blob and
// snapshot goes, with whatever an interrupted ingest or unpack left behind.
// The walk is lenient (any digest a document names is kept, whether or not
// the document parses as something we support), so a collection never takes
// what a stored image might need. Sweeps run under the store's GcLock alone.
import fs from "node:fs/promises";
import path from "node:path";
import type { ContentStore } from "./content/index.js";
import { parseJson } from "./oci.js";

export interface Reach {
  /** Every blob reached: documents, configs, layers. */
  blobs: Set<string>;
  /** The image manifests among them: the snapshots to keep. */
  manifests: Set<string>;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const MAX_DEPTH = 4;

function digestsOf(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((d) => (d as { digest?: unknown } | null)?.digest).filter((d): d is string => typeof d === "string" && DIGEST.test(d));
}

/** The blobs and manifests reachable from `roots` (index or manifest digests). */
export async function reach(content: ContentStore, roots: Iterable<string>): Promise<Reach> {
  const found: Reach = { blobs: new Set(), manifests: new Set() };
  const walk = async (digest: string, depth: number): Promise<void> => {
    if (found.blobs.has(digest) || !DIGEST.test(digest)) return;
    found.blobs.add(digest);
    if (depth > MAX_DEPTH || !(await content.has(digest))) return;
    let doc: Record<string, unknown>;
    try {
      doc = parseJson(await content.read(digest), digest);
    } catch {
      return; // a layer reached as a root, or no JSON document: nothing below it
    }
    if (Array.isArray(doc.manifests)) {
      for (const child of digestsOf(doc.manifests)) await walk(child, depth + 1);
      return;
    }
    const config = digestsOf([doc.config]);
    if (config.length === 0) return;
    found.manifests.add(digest);
    for (const blob of [...config, ...digestsOf(doc.layers)]) found.blobs.add(blob);
  };
  for (const root of roots) await walk(root, 0);
  return found;
}

/** Bytes a directory tree takes on disk (allocated blocks: the snapshots are sparse). */
export async function diskUsage(target: string): Promise<number> {
  const st = await fs.lstat(target).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.blocks * 512;
  let total = st.blocks * 512;
  for (const name of await fs.readdir(target).catch(() => [])) total += await diskUsage(path.join(target, name));
  return total;
}

export interface SnapshotInfo {
  manifest: string;
  dir: string;
  bytes: number;
}

/** The flattened rootfs directories, by manifest; in-progress or stale `tmp-*` directories are left out. */
export async function listSnapshots(snapshotsDir: string): Promise<SnapshotInfo[]> {
  const names = await fs.readdir(snapshotsDir).catch(() => []);
  const out: SnapshotInfo[] = [];
  for (const name of names) {
    if (!/^[a-f0-9]{64}$/.test(name)) continue;
    const dir = path.join(snapshotsDir, name);
    out.push({ manifest: `sha256:${name}`, dir, bytes: await diskUsage(dir) });
  }
  return out;
}

export interface Swept {
  blobs: number;
  snapshots: number;
  /** Bytes freed: blob sizes plus the snapshots' allocated bytes. */
  bytes: number;
}

/** Removes every blob and snapshot `keep` does not hold, and the ingest and unpack leftovers. */
export async function sweep(content: ContentStore, snapshotsDir: string, keep: Reach): Promise<Swept> {
  const swept: Swept = { blobs: 0, snapshots: 0, bytes: 0 };
  for (const blob of await content.list()) {
    if (keep.blobs.has(blob.digest)) continue;
    await content.remove(blob.digest);
    swept.blobs++;
    swept.bytes += blob.size;
  }
  for (const snapshot of await listSnapshots(snapshotsDir)) {
    if (keep.manifests.has(snapshot.manifest)) continue;
    await fs.rm(snapshot.dir, { recursive: true, force: true });
    swept.snapshots++;
    swept.bytes += snapshot.bytes;
  }
  for (const name of await fs.readdir(snapshotsDir).catch(() => [])) {
    if (name.startsWith("tmp-")) await fs.rm(path.join(snapshotsDir, name), { recursive: true, force: true });
  }
  await content.clearIngest();
  return swept;
}
