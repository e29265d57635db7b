// Pulls one image, for one platform, from its registry into the content store.
//
//   1. The manifest the reference names (tag or digest), verified. When it is
//      an index: the entry for the platform, then that manifest, verified
//      against the entry's digest and size.
//   2. The config, stored like any blob and parsed: a manifest that is not a
//      container image, or is built for another platform, fails here, before
//      any layer is fetched.
//   3. The layers, `concurrency` at a time. Each streams into its partial
//      ingest (content/store.ts) while being hashed and is committed only if
//      digest and size match; layers already in the store are not fetched
//      again.
//   4. The manifest, then the index: leaves before the documents that point
//      at them, as load does, so that a stored document's content is there.
// The caller records the image only once all of that succeeded. A failed pull
// leaves some verified blobs and the partial ingests of the others, which the
// next pull reuses: it asks for the rest of a cut-off blob with a Range
// request. Transient failures (a dropped connection, a 5xx) are retried here
// with exponential backoff, a blob's download going on where it stopped; a
// resumed blob that fails verification is fetched once more from the start.
import { ContainerError } from "../../../lib/errors/index.js";
import { sleep } from "../../../lib/fs/read.js";
import { MAX_DOCUMENT_BYTES, type ContentStore } from "../content/index.js";
import type { LoadedImage } from "../load.js";
import {
  MANIFEST_TYPES,
  checkDiffIds,
  configPlatform,
  formatPlatform,
  isAuxiliaryDescriptor,
  isIndexDocument,
  parseConfig,
  parseIndex,
  parseJson,
  parseManifest,
  platformMatches,
  type ConfigDocument,
  type Descriptor,
  type Index,
  type Manifest,
} from "../oci.js";
import { DEFAULT_TAG, familiarString, type ImageReference } from "../reference.js";
import type { Platform, PullProgress } from "../types.js";
import { RegistryClient, isTransient, type FetchedManifest, type RegistryOptions } from "./client.js";

export const DEFAULT_CONCURRENT_DOWNLOADS = 3;

/** Tries of one request or download that makes no progress; the wait doubles from `baseMs` between them. */
export interface RetryPolicy {
  attempts: number;
  baseMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseMs: 500 };
const MAX_BACKOFF_MS = 8000;
/** Progress of one layer is reported at most this often (and at its start and end). */
const PROGRESS_INTERVAL_MS = 200;

export interface PullRequest {
  ref: ImageReference;
  platform: Platform;
  content: ContentStore;
  registry: RegistryOptions;
  /** Layers downloaded at once. */
  concurrency: number;
  onProgress: (progress: PullProgress) => void;
  retry?: RetryPolicy;
}

/**
 * The index entry to pull for `want`: the first runnable image whose platform
 * matches, else the first without a platform (its config then decides).
 */
export function chooseManifest(index: Index, want: Platform): Descriptor | undefined {
  const images = index.manifests.filter((d) => !isAuxiliaryDescriptor(d) && MANIFEST_TYPES.includes(d.mediaType));
  return images.find((d) => d.platform !== undefined && platformMatches(want, d.platform)) ?? images.find((d) => d.platform === undefined);
}

/** Runs `fn` on every item, `limit` at a time; after the first failure no new item starts, and that failure is thrown once all have settled. */
export async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.err;
}

/** A progress callback for one blob, throttled to PROGRESS_INTERVAL_MS between its first and last report. */
export function reporter(desc: Descriptor, onProgress: (p: PullProgress) => void): (done: number, present?: boolean) => void {
  let last = 0;
  return (done, present = false) => {
    const now = Date.now();
    const final = present || done === desc.size;
    if (!final && done !== 0 && now - last < PROGRESS_INTERVAL_MS) return;
    last = now;
    onProgress({ digest: desc.digest, done, total: desc.size, present });
  };
}

export async function pullImage(req: PullRequest): Promise<LoadedImage> {
  const name = familiarString(req.ref);
  // A failed layer stops the downloads still running.
  const stop = new AbortController();
  const signal = req.registry.signal ? AbortSignal.any([req.registry.signal, stop.signal]) : stop.signal;
  const client = new RegistryClient(req.ref, { ...req.registry, signal });

  const { top, index, chosen, manifest } = await fetchManifest(client, req, name);
  const config = await fetchBlobs(client, req, manifest, name, stop);
  await req.content.put(chosen.bytes, { digest: chosen.digest });
  if (index) await req.content.put(top.bytes, { digest: top.digest });

  const { platforms, size } = index
    ? await storedContent(index, top.bytes.length, req.content)
    : { platforms: [configPlatform(config)], size: sumSizes([manifest.config, ...manifest.layers], chosen.bytes.length) };
  return { names: [name], digest: top.digest, platforms, size, ...(config.created ? { createdAt: config.created } : {}) };
}

/** Step 1: what the reference names and, through an index, the platform's manifest. */
async function fetchManifest(
  client: RegistryClient,
  req: PullRequest,
  name: string,
): Promise<{ top: FetchedManifest; index?: Index; chosen: FetchedManifest; manifest: Manifest }> {
  const retry = req.retry ?? DEFAULT_RETRY;
  const signal = req.registry.signal;
  const top = await retrying(retry, signal, () => client.manifest(req.ref.digest ?? req.ref.tag ?? DEFAULT_TAG));
  const topDoc = parseJson(top.bytes, `manifest of ${name}`);
  let index: Index | undefined;
  let chosen = top;
  if (isIndexDocument(topDoc)) {
    index = parseIndex(topDoc, `index of ${name}`, top.mediaType);
    const entry = chooseManifest(index, req.platform);
    if (!entry) {
      const offered = index.manifests.filter((d) => d.platform && !isAuxiliaryDescriptor(d)).map((d) => formatPlatform(d.platform!));
      throw new ContainerError("notFound", `${name} has no image for ${formatPlatform(req.platform)}`, {
        hint: `it has ${offered.join(", ") || "no runnable image"}; pick one with --platform`,
      });
    }
    chosen = await retrying(retry, signal, () => client.manifest(entry.digest, entry.size));
  }
  const what = `manifest ${chosen.digest}`;
  const manifest = parseManifest(parseJson(chosen.bytes, what), what, chosen.mediaType);
  if (manifest.config.size > MAX_DOCUMENT_BYTES) throw new ContainerError("invalidArgument", `${what}: its config is too big`);
  return { top, ...(index ? { index } : {}), chosen, manifest };
}

/** Runs `fn` until it succeeds, fails for good, or fails transiently `policy.attempts` times; waits in between. */
async function retrying<T>(policy: RetryPolicy, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || attempt >= policy.attempts) throw err;
      await backoff(policy, attempt, signal);
    }
  }
}

async function backoff(policy: RetryPolicy, attempt: number, signal: AbortSignal | undefined): Promise<void> {
  await sleep(Math.min(policy.baseMs * 2 ** (attempt - 1), MAX_BACKOFF_MS), signal);
  if (signal?.aborted) throw new ContainerError("cancelled", "pull cancelled");
}

/**
 * Downloads one blob into the content store through its partial ingest:
 * after a transient failure the next try asks for the rest only. Tries that
 * add no byte count against `policy.attempts`; one that does starts the count
 * again. A resumed blob that fails verification starts over once.
 */
export async function downloadBlob(
  client: RegistryClient,
  content: ContentStore,
  desc: Descriptor,
  options: { retry: RetryPolicy; signal?: AbortSignal; report?: (done: number, present?: boolean) => void },
): Promise<void> {
  const { report } = options;
  const ingest = await content.resume(desc);
  try {
    // Another pull may have stored it while this one waited for the partial.
    if (await content.has(desc.digest)) return report?.(desc.size, true);
    report?.(ingest.offset);
    let fresh = !ingest.resumed;
    for (let failures = 0; ; ) {
      const before = ingest.offset;
      try {
        if (ingest.offset < desc.size) {
          const { start, chunks } = await client.blob(desc, ingest.offset, (done) => done < desc.size && report?.(done));
          await ingest.append(start, chunks);
        }
      } catch (err) {
        failures = ingest.offset > before ? 1 : failures + 1;
        if (!isTransient(err) || failures >= options.retry.attempts) throw err;
        await backoff(options.retry, failures, options.signal);
        continue;
      }
      try {
        await ingest.commit();
        break;
      } catch (err) {
        // commit() emptied the partial: a resumed blob starts over, once.
        if (fresh) throw err;
        fresh = true;
      }
    }
  } finally {
    await ingest.release();
  }
  report?.(desc.size);
}

/** Steps 2 and 3: the config, checked, then the layers; the first layer that fails aborts `stop`, and with it the others. */
async function fetchBlobs(client: RegistryClient, req: PullRequest, manifest: Manifest, name: string, stop: AbortController): Promise<ConfigDocument> {
  const { content } = req;
  const signal = req.registry.signal ? AbortSignal.any([req.registry.signal, stop.signal]) : stop.signal;
  const options = { retry: req.retry ?? DEFAULT_RETRY, signal };
  const store = async (desc: Descriptor, report?: (done: number, present?: boolean) => void): Promise<void> => {
    if (await content.has(desc.digest)) return report?.(desc.size, true);
    await downloadBlob(client, content, desc, { ...options, ...(report ? { report } : {}) });
  };
  await store(manifest.config);
  const what = `config ${manifest.config.digest}`;
  const config = parseConfig(parseJson(await content.read(manifest.config.digest), what), what);
  checkDiffIds(config.diffIds.length, manifest.layers.length, `manifest of ${name}`);
  const platform = configPlatform(config);
  if (!platformMatches(req.platform, platform)) {
    throw new ContainerError("notFound", `${name} is built for ${formatPlatform(platform)}, not ${formatPlatform(req.platform)}`, {
      hint: "pick the platform with --platform",
    });
  }
  const layers = [...new Map(manifest.layers.map((l) => [l.digest, l])).values()];
  await eachLimited(layers, req.concurrency, (layer) =>
    store(layer, reporter(layer, req.onProgress)).catch((err: unknown) => {
      stop.abort();
      throw err;
    }),
  );
  return config;
}

/** Bytes of a document plus its distinct blobs. */
function sumSizes(blobs: Descriptor[], documentBytes: number): number {
  const sizes = new Map(blobs.map((d) => [d.digest, d.size]));
  return documentBytes + [...sizes.values()].reduce((a, b) => a + b, 0);
}

/**
 * The platforms of an index whose images are in the store, and the bytes they
 * take: an earlier pull of another platform of the same index counts too.
 */
async function storedContent(index: Index, indexBytes: number, content: ContentStore): Promise<{ platforms: Platform[]; size: number }> {
  const platforms: Platform[] = [];
  const blobs: Descriptor[] = [];
  for (const child of index.manifests) {
    if (isAuxiliaryDescriptor(child) || !MANIFEST_TYPES.includes(child.mediaType) || !(await content.has(child.digest))) continue;
    const what = `manifest ${child.digest}`;
    const manifest = parseManifest(parseJson(await content.read(child.digest), what), what);
    blobs.push(child, manifest.config, ...manifest.layers);
    const configWhat = `config ${manifest.config.digest}`;
    platforms.push(child.platform ?? configPlatform(parseConfig(parseJson(await content.read(manifest.config.digest), configWhat), configWhat)));
  }
  return { platforms, size: sumSizes(blobs, indexBytes) };
}
