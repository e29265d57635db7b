// The ImageStore: content store + image records + lazily built rootfs images.
// Images arrive by load (archives, ./load.ts) or pull (registries, ./registry/)
// and are recorded by one code path, record().
//
// <root>/content/blobs/sha256/<hex>   verified blobs (content/store.ts)
// <root>/content/ingest/              blobs being written
// <root>/images.json                  the records (content/records.ts)
// <root>/snapshots/<hex>/rootfs.ext4  one flattened rootfs per manifest (unpack/)
import fs from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { ContainerError, asContainerError } from "../../lib/errors/index.js";
import type { Logger } from "../../lib/log/index.js";
import { ContentStore, ImageRecords, digestHex } from "./content/index.js";
import { loadArchive, type LoadedImage } from "./load.js";
import {
  configPlatform,
  formatPlatform,
  hostPlatform,
  isAuxiliaryDescriptor,
  isIndexDocument,
  parseConfig,
  parseIndex,
  parseJson,
  parseManifest,
  platformMatches,
  type ConfigDocument,
  type Index,
  type Manifest,
} from "./oci.js";
import { digestQuery, familiarName, familiarString, parseReference } from "./reference.js";
import { DEFAULT_CONCURRENT_DOWNLOADS, pullImage } from "./registry/index.js";
import type { ImageRecord, ImageStore, LoadOptions, Platform, PullOptions, ResolvedImage } from "./types.js";
import { rootfsPath, unpackRootfs } from "./unpack/index.js";

export interface ImageStoreOptions {
  /** Directory the store owns (content/, images.json, snapshots/). */
  root: string;
  logger: Logger;
  /** Cap on the bytes an image may unpack to; default 32 GiB. */
  maxUnpackedBytes?: number;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** The layers a pull downloads at once. */
function downloads(n: number | undefined): number {
  if (n === undefined) return DEFAULT_CONCURRENT_DOWNLOADS;
  if (!Number.isInteger(n) || n < 1 || n > 32) throw new ContainerError("invalidArgument", `concurrent downloads must be 1 to 32, not ${n}`);
  return n;
}

/** Runs `fn`, turning anything it throws into a ContainerError. */
async function boundary<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asContainerError(err);
  }
}

class Store implements ImageStore {
  private readonly content: ContentStore;
  private readonly records: ImageRecords;
  private readonly snapshots: string;
  /** Unpacks under way, by manifest digest: concurrent resolves share one. */
  private readonly unpacking = new Map<string, Promise<string>>();

  constructor(private readonly options: ImageStoreOptions) {
    this.content = new ContentStore(path.join(options.root, "content"));
    this.records = new ImageRecords(path.join(options.root, "images.json"));
    this.snapshots = path.join(options.root, "snapshots");
  }

  load(input: NodeJS.ReadableStream | Readable, _options: LoadOptions = {}): Promise<ImageRecord[]> {
    return boundary(async () => {
      const started = Date.now();
      const records = await this.record(await loadArchive(input, this.content, this.options.logger));
      this.options.logger.info("images loaded", { references: records.map((r) => r.reference), ms: Date.now() - started });
      return records;
    });
  }

  pull(reference: string, options: PullOptions = {}): Promise<ImageRecord> {
    return boundary(async () => {
      const started = Date.now();
      const pulled = await pullImage({
        ref: parseReference(reference),
        platform: options.platform ?? hostPlatform(),
        content: this.content,
        registry: {
          ...(options.credentials ? { credentials: options.credentials } : {}),
          ...(options.insecureRegistries ? { insecure: options.insecureRegistries } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
        },
        concurrency: downloads(options.maxConcurrentDownloads),
        onProgress: options.onProgress ?? (() => undefined),
      });
      const [record] = await this.record([pulled]);
      this.options.logger.info("image pulled", { reference: record!.reference, digest: record!.digest, size: record!.size, ms: Date.now() - started });
      return record!;
    });
  }

  /** Names the stored images: one record per name, or one under the digest when untagged. */
  private async record(images: LoadedImage[]): Promise<ImageRecord[]> {
    const records = images.flatMap((image) =>
      (image.names.length > 0 ? image.names : [image.digest]).map(
        (reference): ImageRecord => ({
          reference,
          digest: image.digest,
          platforms: image.platforms,
          size: image.size,
          ...(image.createdAt ? { createdAt: image.createdAt } : {}),
        }),
      ),
      );
    await this.records.update((all) => {
      for (const record of records) {
        all.set(record.reference, record);
        // A name supersedes the untagged entry of the same image.
        if (record.reference !== record.digest) all.delete(record.digest);
      }
    });
    return records;
  }

  list(): Promise<ImageRecord[]> {
    return boundary(() => this.records.list());
  }

  resolve(reference: string, platform: Platform): Promise<ResolvedImage> {
    return boundary(async () => {
      const record = await this.find(reference);
      let manifestDigest = record.digest;
      let doc = await this.document(record.digest);
      if (isIndexDocument(doc)) {
        const chosen = await this.choose(record, parseIndex(doc, `index ${record.digest}`), platform);
        manifestDigest = chosen;
        doc = await this.document(chosen);
      }
      const manifest = parseManifest(doc, `manifest ${manifestDigest}`);
      const config = await this.config(manifest);
      if (!platformMatches(platform, configPlatform(config))) throw this.noPlatform(record, platform);
      return {
        reference: record.reference,
        manifestDigest,
        platform: configPlatform(config),
        config: config.config,
        rootfsPath: await this.rootfs(manifestDigest, manifest, config),
      };
    });
  }

  /** The record a user's reference means: a name, a full digest or a unique digest prefix. */
  private async find(input: string): Promise<ImageRecord> {
    const records = await this.records.list();
    const byDigest = digestQuery(input);
    if (byDigest && !byDigest.fallback) return this.findByDigest(records, byDigest.hex, input);
    let ref;
    try {
      ref = parseReference(input);
    } catch (err) {
      if (byDigest) return this.findByDigest(records, byDigest.hex, input);
      throw err;
    }
    const key = familiarString(ref);
    const exact = records.find((r) => r.reference === key);
    if (exact) return exact;
    if (ref.digest !== undefined) {
      // name@digest: any record of that repository holding that image.
      const name = familiarName(ref);
      const match = records.find((r) => r.digest === ref.digest && !r.reference.startsWith("sha256:") && familiarName(parseReference(r.reference)) === name);
      if (match) return match;
    }
    if (byDigest) return this.findByDigest(records, byDigest.hex, input);
    throw new ContainerError("notFound", `image ${input} not found`, { hint: "load it first with `container image load`" });
  }

  private findByDigest(records: ImageRecord[], hex: string, input: string): ImageRecord {
    const matches = records.filter((r) => digestHex(r.digest).startsWith(hex));
    if (matches.length === 0) throw new ContainerError("notFound", `no image has digest ${input}`);
    if (new Set(matches.map((r) => r.digest)).size > 1) {
      throw new ContainerError("invalidArgument", `digest prefix ${input} matches more than one image`, { hint: "give more digits" });
    }
    return matches[0]!;
  }

  private async document(digest: string): Promise<Record<string, unknown>> {
    return parseJson(await this.content.read(digest), `blob ${digest}`);
  }

  private async config(manifest: Manifest): Promise<ConfigDocument> {
    return parseConfig(await this.document(manifest.config.digest), `config ${manifest.config.digest}`);
  }

  /** The index entry for `platform` whose content is in the store. */
  private async choose(record: ImageRecord, index: Index, platform: Platform): Promise<string> {
    for (const child of index.manifests) {
      if (isAuxiliaryDescriptor(child) || !(await this.content.has(child.digest))) continue;
      const doc = await this.document(child.digest);
      if (isIndexDocument(doc)) continue; // nested indexes: not needed by anything we load yet
      const have = child.platform ?? configPlatform(await this.config(parseManifest(doc, `manifest ${child.digest}`)));
      if (platformMatches(platform, have)) return child.digest;
    }
    throw this.noPlatform(record, platform);
  }

  private noPlatform(record: ImageRecord, platform: Platform): ContainerError {
    return new ContainerError("notFound", `image ${record.reference} is not available for ${formatPlatform(platform)}`, {
      hint: `it is built for ${record.platforms.map(formatPlatform).join(", ") || "no platform"}`,
    });
  }

  private rootfs(manifestDigest: string, manifest: Manifest, config: ConfigDocument): Promise<string> {
    let pending = this.unpacking.get(manifestDigest);
    if (pending === undefined) {
      const target = rootfsPath(this.snapshots, manifestDigest);
      pending = (async () =>
        (await exists(target))
          ? target
          : unpackRootfs({
              content: this.content,
              snapshotsDir: this.snapshots,
              manifestDigest,
              layers: manifest.layers,
              diffIds: config.diffIds,
              logger: this.options.logger,
              ...(this.options.maxUnpackedBytes !== undefined ? { maxBytes: this.options.maxUnpackedBytes } : {}),
            }))().finally(() => this.unpacking.delete(manifestDigest));
      this.unpacking.set(manifestDigest, pending);
    }
    return pending;
  }
}

export function createImageStore(options: ImageStoreOptions): ImageStore {
  return new Store(options);
}
