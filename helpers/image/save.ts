// Writes stored images as one tar stream, for `image save`:
//
//   oci     an OCI image layout: oci-layout, index.json (one entry per name,
//           annotated with `io.containerd.image.name` (the full reference)
//           and `org.opencontainers.image.ref.name` (its tag)), and
//           blobs/sha256/<hex> for every stored blob the images reach.
//   docker  the same layout plus the `docker save` manifest.json (Config,
//           RepoTags, Layers as paths into blobs/), as docker (v25+) writes
//           it: docker load and skopeo's docker-archive read manifest.json,
//           our load reads the layout, so digests survive the round trip.
//           manifest.json lists one platform of a multi-platform image (the
//           host's when stored): the format has room for one.
//
// Blobs are stored verbatim, so the saved documents keep their digests. An
// index whose other platforms were never pulled is saved as it is, with the
// manifests that are stored; loaders skip the entries they lack, as ours does.
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { ContainerError } from "../../lib/errors/index.js";
import { digestHex, type ContentStore } from "./content/index.js";
import { reach } from "./gc.js";
import { INDEX_TYPES, MEDIA, isAuxiliaryDescriptor, isIndexDocument, parseIndex, parseJson, parseManifest, platformMatches, type Manifest } from "./oci.js";
import { fullString, parseReference } from "./reference.js";
import type { ImageRecord, Platform, SaveFormat } from "./types.js";

/** Entries get one fixed time, so that saving the same images twice gives the same bytes. */
const MTIME = new Date(0);

export interface SaveRequest {
  content: ContentStore;
  /** The records to save, in order; several may share a digest. */
  records: ImageRecord[];
  format: SaveFormat;
  /** The platform manifest.json prefers for a multi-platform image. */
  platform: Platform;
}

interface Plan {
  index: { schemaVersion: 2; mediaType: string; manifests: Record<string, unknown>[] };
  dockerManifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[];
  blobs: { digest: string; size: number }[];
}

const blobName = (digest: string): string => `blobs/sha256/${digestHex(digest)}`;

async function document(content: ContentStore, digest: string): Promise<Record<string, unknown>> {
  return parseJson(await content.read(digest), `blob ${digest}`);
}

/** The manifest manifest.json lists for an image: itself, or the index entry for `platform` (else the first stored). */
async function dockerImage(content: ContentStore, digest: string, platform: Platform): Promise<Manifest | undefined> {
  const doc = await document(content, digest);
  if (!isIndexDocument(doc)) return parseManifest(doc, `manifest ${digest}`);
  const stored = [];
  for (const child of parseIndex(doc, `index ${digest}`).manifests) {
    if (isAuxiliaryDescriptor(child) || INDEX_TYPES.includes(child.mediaType) || !(await content.has(child.digest))) continue;
    stored.push(child);
  }
  const chosen = stored.find((c) => c.platform && platformMatches(platform, c.platform)) ?? stored[0];
  return chosen ? parseManifest(await document(content, chosen.digest), `manifest ${chosen.digest}`) : undefined;
}

async function plan(req: SaveRequest): Promise<Plan> {
  const { content } = req;
  const manifests: Record<string, unknown>[] = [];
  // One manifest.json entry per image, naming it by every tag it is saved under.
  const dockerEntries = new Map<string, Plan["dockerManifest"][number]>();
  for (const record of req.records) {
    const doc = await document(content, record.digest);
    const mediaType = typeof doc.mediaType === "string" ? doc.mediaType : isIndexDocument(doc) ? MEDIA.ociIndex : MEDIA.ociManifest;
    const named = record.reference !== record.digest;
    const ref = named ? parseReference(record.reference) : undefined;
    manifests.push({
      mediaType,
      digest: record.digest,
      size: await content.size(record.digest),
      ...(ref
        ? { annotations: { "io.containerd.image.name": fullString(ref), ...(ref.tag ? { "org.opencontainers.image.ref.name": ref.tag } : {}) } }
        : {}),
    });
    if (req.format !== "docker") continue;
    const tag = ref?.tag !== undefined && ref.digest === undefined ? record.reference : undefined;
    const known = dockerEntries.get(record.digest);
    if (known) {
      if (tag) (known.RepoTags ??= []).push(tag);
      continue;
    }
    const image = await dockerImage(content, record.digest, req.platform);
    if (!image) throw new ContainerError("notFound", `image ${record.reference} has no platform stored`);
    dockerEntries.set(record.digest, { Config: blobName(image.config.digest), RepoTags: tag ? [tag] : null, Layers: image.layers.map((l) => blobName(l.digest)) });
  }
  const found = await reach(content, req.records.map((r) => r.digest));
  const blobs: Plan["blobs"] = [];
  for (const digest of [...found.blobs].sort()) {
    // Index entries never pulled are not stored: they are left out.
    if (await content.has(digest)) blobs.push({ digest, size: await content.size(digest) });
  }
  return {
    index: { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests },
    dockerManifest: [...dockerEntries.values()],
    blobs,
  };
}

/** Plans the archive (every check happens here) and returns it as a stream being written. */
export async function saveArchive(req: SaveRequest): Promise<Readable> {
  const p = await plan(req);
  const pack = tar.pack();
  const out = new PassThrough();
  const write = async (): Promise<void> => {
    const file = (name: string, text: string): Promise<void> =>
      new Promise((resolve, reject) => pack.entry({ name, mtime: MTIME, mode: 0o644 }, text, (err) => (err ? reject(err) : resolve())));
    await file("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await new Promise<void>((resolve, reject) => pack.entry({ name: "blobs/", type: "directory", mtime: MTIME, mode: 0o755 }, (err) => (err ? reject(err) : resolve())));
    await new Promise<void>((resolve, reject) => pack.entry({ name: "blobs/sha256/", type: "directory", mtime: MTIME, mode: 0o755 }, (err) => (err ? reject(err) : resolve())));
    for (const blob of p.blobs) {
      const entry = pack.entry({ name: blobName(blob.digest), size: blob.size, mtime: MTIME, mode: 0o644 });
      await pipeline(req.content.openRead(blob.digest), entry);
    }
    await file("index.json", JSON.stringify(p.index));
    if (req.format === "docker") await file("manifest.json", JSON.stringify(p.dockerManifest));
    pack.finalize();
  };
  pipeline(pack, out).catch((err: unknown) => out.destroy(err as Error));
  write().catch((err: unknown) => pack.destroy(err as Error));
  return out;
}
