// Pushes one stored image to its registry.
//
//   1. What goes up: the image's index with every manifest it lists, when all
//      of them are stored; otherwise (an index pulled for one platform) the
//      stored manifest of `platform` (else the first stored) on its own, as
//      Docker pushes a single-platform pull. Each manifest brings its config
//      and layers.
//   2. The blobs, `concurrency` at a time: a HEAD first, and an upload only
//      for those the registry lacks. The registry verifies each digest.
//   3. The manifests by digest, then the top document under the reference's
//      tag (or its digest): leaves before the documents that point at them,
//      so the registry can check every reference.
import { ContainerError } from "../../../lib/errors/index.js";
import type { ContentStore } from "../content/index.js";
import {
  INDEX_TYPES,
  MEDIA,
  isAuxiliaryDescriptor,
  isIndexDocument,
  parseIndex,
  parseJson,
  parseManifest,
  platformMatches,
  type Descriptor,
} from "../oci.js";
import { familiarString, type ImageReference } from "../reference.js";
import type { Platform, PullProgress } from "../types.js";
import { RegistryClient, type RegistryOptions } from "./client.js";
import { eachLimited, reporter } from "./pull.js";

export const DEFAULT_CONCURRENT_UPLOADS = 3;

export interface PushRequest {
  /** Where to: registry, repository, and the tag (or digest) to put. */
  ref: ImageReference;
  /** The stored index or manifest to push. */
  digest: string;
  platform: Platform;
  content: ContentStore;
  registry: RegistryOptions;
  concurrency: number;
  onProgress: (progress: PullProgress) => void;
  /** Chunk size of uploads (see RegistryClient.uploadBlob). */
  chunkBytes?: number;
}

interface Document {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

interface Plan {
  top: Document;
  /** Manifests under an index, put by digest before it. */
  children: Document[];
  blobs: Descriptor[];
}

async function readDocument(content: ContentStore, digest: string): Promise<{ doc: Record<string, unknown>; bytes: Buffer }> {
  const bytes = await content.read(digest);
  return { doc: parseJson(bytes, `blob ${digest}`), bytes };
}

async function plan(req: PushRequest): Promise<Plan> {
  const { content } = req;
  const blobs = new Map<string, Descriptor>();
  const manifestDoc = async (digest: string, declared?: string): Promise<Document> => {
    const { doc, bytes } = await readDocument(content, digest);
    const manifest = parseManifest(doc, `manifest ${digest}`, declared);
    for (const d of [manifest.config, ...manifest.layers]) blobs.set(d.digest, d);
    return { digest, mediaType: manifest.mediaType ?? declared ?? MEDIA.ociManifest, bytes };
  };
  const { doc, bytes } = await readDocument(content, req.digest);
  if (!isIndexDocument(doc)) return { top: await manifestDoc(req.digest), children: [], blobs: [...blobs.values()] };

  const index = parseIndex(doc, `index ${req.digest}`);
  const stored: Descriptor[] = [];
  for (const child of index.manifests) if (await content.has(child.digest)) stored.push(child);
  if (stored.length === index.manifests.length && stored.every((c) => !INDEX_TYPES.includes(c.mediaType))) {
    const children = [];
    for (const child of stored) children.push(await manifestDoc(child.digest, child.mediaType));
    return { top: { digest: req.digest, mediaType: index.mediaType ?? MEDIA.ociIndex, bytes }, children, blobs: [...blobs.values()] };
  }
  const runnable = stored.filter((c) => !isAuxiliaryDescriptor(c) && !INDEX_TYPES.includes(c.mediaType));
  const chosen = runnable.find((c) => c.platform && platformMatches(req.platform, c.platform)) ?? runnable[0];
  if (!chosen) throw new ContainerError("notFound", `image ${familiarString(req.ref)} has no platform stored to push`);
  return { top: await manifestDoc(chosen.digest, chosen.mediaType), children: [], blobs: [...blobs.values()] };
}

/** Pushes the image; returns the digest the reference names on the registry, and the bytes it is made of. */
export async function pushImage(req: PushRequest): Promise<{ digest: string; size: number }> {
  const p = await plan(req);
  const stop = new AbortController();
  const signal = req.registry.signal ? AbortSignal.any([req.registry.signal, stop.signal]) : stop.signal;
  const client = new RegistryClient(req.ref, { ...req.registry, signal, push: true });
  await eachLimited(p.blobs, req.concurrency, async (blob) => {
    const report = reporter(blob, req.onProgress);
    try {
      if (await client.hasBlob(blob.digest)) return report(blob.size, true);
      report(0);
      await client.uploadBlob(blob, req.content.openRead(blob.digest), {
        ...(req.chunkBytes ? { chunkBytes: req.chunkBytes } : {}),
        onBytes: (done) => report(done),
      });
    } catch (err) {
      stop.abort();
      throw err;
    }
  });
  for (const child of p.children) await client.putManifest(child.digest, child.bytes, child.mediaType);
  const digest = await client.putManifest(req.ref.digest ?? req.ref.tag ?? p.top.digest, p.top.bytes, p.top.mediaType);
  const size = [p.top, ...p.children].reduce((n, d) => n + d.bytes.length, 0) + p.blobs.reduce((n, b) => n + b.size, 0);
  return { digest, size };
}
