// The ImageStore: content store + image records + lazily built rootfs images.
// Images arrive by load (archives, ./load.ts) or pull (registries, ./registry/)
// and are recorded by one code path, record(); they leave by save (./save.ts)
// and push. Removal and prune drop records, then garbage-collect (./gc.ts).
//
// Every operation that reads or adds content holds the store's GcLock; a
// collection runs alone. `remove` collects only when nothing holds the store
// (whatever it leaves is garbage for the next prune); `prune` waits its turn.
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
import { ContentStore, GcLock, ImageRecords, digestHex } from "./content/index.js";
import { listSnapshots, reach, sweep } from "./gc.js";
import { loadArchive, type LoadedImage } from "./load.js";
import {
  MANIFEST_TYPES,
  MEDIA,
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
import { DEFAULT_CONCURRENT_DOWNLOADS, DEFAULT_CONCURRENT_UPLOADS, pullImage, pushImage } from "./registry/index.js";
import { saveArchive } from "./save.js";
import type {
  ImageDetail,
  ImageRecord,
  ImageStore,
  ImageUsers,
  LoadOptions,
  Platform,
  PruneOptions,
  PruneResult,
  PullOptions,
  PushOptions,
  PushResult,
  RemoveOptions,
  RemoveResult,
  ResolvedImage,
  SaveFormat,
  StoreUsage,
} from "./types.js";
import { rootfsPath, unpackRootfs } from "./unpack/index.js";

export interface ImageStoreOptions {
  /** Directory the store owns (content/, images.json, snapshots/). */
  root: string;
  logger: Logger;
  /** Cap on the bytes an image may unpack to; default 32 GiB. */
  maxUnpackedBytes?: number;
  /** Cap on a compressed layer's inflated bytes, max(size × ratio, floor); default 200× or 1 GiB (unpack/). */
  maxLayerExpansion?: { ratio: number; floor: number };
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** The blobs a pull downloads, or a push uploads, at once. */
function transfers(n: number | undefined, fallback: number, what: string): number {
  if (n === undefined) return fallback;
  if (!Number.isInteger(n) || n < 1 || n > 32) throw new ContainerError("invalidArgument", `concurrent ${what} must be 1 to 32, not ${n}`);
  return n;
}

const isUntagged = (r: ImageRecord): boolean => r.reference === r.digest;

/** The containers using any of `manifests`. */
function usersOf(users: ImageUsers, manifests: Iterable<string>): string[] {
  return [...new Set([...manifests].flatMap((m) => users.get(m) ?? []))];
}

function inUse(reference: string, containers: string[], force: boolean): ContainerError {
  const which = containers.length === 1 ? `container ${containers[0]}` : `containers ${containers.join(", ")}`;
  return new ContainerError("invalidState", `image ${reference} is in use by ${which}`, {
    hint: force ? "remove the container first" : "remove the container first, or use -f to remove the name (the image stays, untagged, while containers use it)",
  });
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
  private readonly lock = new GcLock();

  constructor(private readonly options: ImageStoreOptions) {
    this.content = new ContentStore(path.join(options.root, "content"));
    this.records = new ImageRecords(path.join(options.root, "images.json"));
    this.snapshots = path.join(options.root, "snapshots");
  }

  load(input: NodeJS.ReadableStream | Readable, _options: LoadOptions = {}): Promise<ImageRecord[]> {
    return boundary(() => this.lock.use(async () => {
      const started = Date.now();
      const records = await this.record(await loadArchive(input, this.content, this.options.logger));
      this.options.logger.info("images loaded", { references: records.map((r) => r.reference), ms: Date.now() - started });
      return records;
    }));
  }

  pull(reference: string, options: PullOptions = {}): Promise<ImageRecord> {
    return boundary(() => this.lock.use(async () => {
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
        concurrency: transfers(options.maxConcurrentDownloads, DEFAULT_CONCURRENT_DOWNLOADS, "downloads"),
        onProgress: options.onProgress ?? (() => undefined),
      });
      const [record] = await this.record([pulled]);
      this.options.logger.info("image pulled", { reference: record!.reference, digest: record!.digest, size: record!.size, ms: Date.now() - started });
      return record!;
    }));
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
    return boundary(() => this.lock.use(async () => {
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
    }));
  }

  use<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.use(fn);
  }

  tag(source: string, target: string): Promise<ImageRecord> {
    return boundary(() => this.lock.use(async () => {
      const ref = parseReference(target);
      if (ref.digest !== undefined) {
        throw new ContainerError("invalidArgument", `cannot tag an image as ${target}: a tag has no digest`, { hint: "give NAME[:TAG]" });
      }
      const record = await this.find(source);
      const [tagged] = await this.record([
        { names: [familiarString(ref)], digest: record.digest, platforms: record.platforms, size: record.size, ...(record.createdAt ? { createdAt: record.createdAt } : {}) },
      ]);
      this.options.logger.info("image tagged", { source: record.reference, target: tagged!.reference, digest: record.digest });
      return tagged!;
    }));
  }

  remove(references: string[], options: RemoveOptions): Promise<RemoveResult> {
    return boundary(async () => {
      if (references.length === 0) throw new ContainerError("invalidArgument", "no image named", { hint: "container image rm IMAGE..." });
      const force = options.force ?? false;
      // Found and walked first; checked again against the records as they are when written.
      const targets: { input: string; byName: boolean; records: ImageRecord[]; digest: string; users: string[] }[] = [];
      for (const input of references) {
        const { records, byName } = await this.match(input);
        const digest = records[0]!.digest;
        targets.push({ input, byName, records, digest, users: usersOf(options.users, (await reach(this.content, [digest])).manifests) });
      }
      const untagged: string[] = [];
      const deleted: string[] = [];
      await this.records.update((all) => {
        untagged.length = 0;
        deleted.length = 0;
        const keep = new Map<string, ImageRecord>();
        for (const t of targets) {
          const mine = t.records.filter((r) => all.has(r.reference));
          if (mine.length === 0) continue; // named twice in one command
          const names = [...all.values()].filter((r) => r.digest === t.digest && !isUntagged(r));
          const going = t.byName ? mine : [...all.values()].filter((r) => r.digest === t.digest);
          if (!t.byName && !force && going.filter((r) => !isUntagged(r)).length > 1) {
            throw new ContainerError("invalidState", `image ${t.input} is named ${going.map((r) => r.reference).join(", ")}`, {
              hint: "remove the names one by one, or use -f to remove them all",
            });
          }
          const goingRefs = new Set(going.map((r) => r.reference));
          const last = names.every((r) => goingRefs.has(r.reference));
          if (last && t.users.length > 0) {
            // Containers keep the image: without -f nothing goes; with it the names go and an untagged record stays.
            if (!force || going.every(isUntagged)) throw inUse(t.input, t.users, force);
            keep.set(t.digest, { ...going[0]!, reference: t.digest });
          }
          for (const r of going) {
            all.delete(r.reference);
            if (!isUntagged(r)) untagged.push(r.reference);
          }
        }
        for (const [digest, record] of keep) all.set(digest, record);
        const left = new Set([...all.values()].map((r) => r.digest));
        for (const t of targets) if (!left.has(t.digest) && !deleted.includes(t.digest)) deleted.push(t.digest);
      });
      this.options.logger.info("images removed", { untagged, deleted });
      const swept = await this.lock.tryCollect(() => this.collect(options.users));
      return { untagged, deleted, reclaimedBytes: swept?.bytes ?? 0 };
    });
  }

  prune(options: PruneOptions): Promise<PruneResult> {
    return boundary(() =>
      this.lock.collect(async () => {
        const records = await this.records.list();
        const removed: string[] = [];
        for (const record of records) {
          if (!options.all && !isUntagged(record)) continue;
          const { manifests } = await reach(this.content, [record.digest]);
          if (usersOf(options.users, manifests).length === 0) removed.push(record.reference);
        }
        if (removed.length > 0) await this.records.update((all) => removed.forEach((r) => all.delete(r)));
        const swept = await this.collect(options.users);
        this.options.logger.info("images pruned", { removed, blobs: swept.blobs, snapshots: swept.snapshots, bytes: swept.bytes });
        return { removed, blobs: swept.blobs, snapshots: swept.snapshots, reclaimedBytes: swept.bytes };
      }),
    );
  }

  /** Sweeps what neither a record nor a container reaches; the caller holds the lock alone. */
  private async collect(users: ImageUsers): Promise<{ blobs: number; snapshots: number; bytes: number }> {
    const roots = [...(await this.records.list()).map((r) => r.digest), ...users.keys()];
    return sweep(this.content, this.snapshots, await reach(this.content, roots));
  }

  usage(users: ImageUsers): Promise<StoreUsage> {
    return boundary(() =>
      this.lock.use(async () => {
        const byDigest = new Map<string, ImageRecord[]>();
        for (const r of await this.records.list()) byDigest.set(r.digest, [...(byDigest.get(r.digest) ?? []), r]);
        const perImage: StoreUsage["perImage"] = [];
        for (const [digest, records] of byDigest) {
          const { manifests } = await reach(this.content, [digest]);
          perImage.push({ references: records.map((r) => r.reference), digest, size: records[0]!.size, containers: usersOf(users, manifests).length });
        }
        // What prune -a keeps: the images containers use, and the containers' own manifests.
        const kept = await reach(this.content, [...perImage.filter((i) => i.containers > 0).map((i) => i.digest), ...users.keys()]);
        const blobs = await this.content.list();
        const snapshots = await listSnapshots(this.snapshots);
        const sum = (xs: { bytes: number }[]): number => xs.reduce((n, x) => n + x.bytes, 0);
        const blobBytes = blobs.map((b) => ({ bytes: b.size, kept: kept.blobs.has(b.digest) }));
        return {
          images: {
            total: perImage.length,
            active: perImage.filter((i) => i.containers > 0).length,
            bytes: sum(blobBytes),
            reclaimable: sum(blobBytes.filter((b) => !b.kept)),
          },
          snapshots: {
            total: snapshots.length,
            active: snapshots.filter((s) => users.has(s.manifest)).length,
            bytes: sum(snapshots),
            reclaimable: sum(snapshots.filter((s) => !kept.manifests.has(s.manifest))),
          },
          perImage,
        };
      }),
    );
  }

  inspect(reference: string): Promise<ImageDetail> {
    return boundary(() =>
      this.lock.use(async () => {
        const record = await this.find(reference);
        const top = await this.document(record.digest);
        let manifestDigest = record.digest;
        let manifestType: string | undefined;
        if (isIndexDocument(top)) {
          const chosen = await this.shown(record, parseIndex(top, `index ${record.digest}`));
          manifestDigest = chosen.digest;
          manifestType = chosen.mediaType;
        }
        const manifest = parseManifest(await this.document(manifestDigest), `manifest ${manifestDigest}`, manifestType);
        const config = await this.config(manifest);
        const mediaType = typeof top.mediaType === "string" ? top.mediaType : isIndexDocument(top) ? MEDIA.ociIndex : MEDIA.ociManifest;
        return {
          ...record,
          mediaType,
          manifestDigest,
          platform: configPlatform(config),
          configDigest: manifest.config.digest,
          config: config.config,
          layers: manifest.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
        };
      }),
    );
  }

  /** The index entry inspect shows: the host platform's when stored, else the first stored image. */
  private async shown(record: ImageRecord, index: Index): Promise<{ digest: string; mediaType: string }> {
    const stored = [];
    for (const child of index.manifests) {
      if (isAuxiliaryDescriptor(child) || !MANIFEST_TYPES.includes(child.mediaType) || !(await this.content.has(child.digest))) continue;
      stored.push(child);
    }
    const host = hostPlatform();
    const chosen = stored.find((c) => c.platform && platformMatches(host, c.platform)) ?? stored[0];
    if (!chosen) throw new ContainerError("notFound", `image ${record.reference} has no platform stored`);
    return chosen;
  }

  save(references: string[], format: SaveFormat): Promise<Readable> {
    return boundary(async () => {
      if (references.length === 0) throw new ContainerError("invalidArgument", "no image named", { hint: "container image save IMAGE..." });
      if (format !== "oci" && format !== "docker") {
        throw new ContainerError("invalidArgument", `unknown archive format "${String(format)}"`, { hint: "use oci or docker" });
      }
      const release = await this.lock.hold();
      try {
        const records: ImageRecord[] = [];
        for (const input of references) {
          const record = await this.find(input);
          if (!records.some((r) => r.reference === record.reference)) records.push(record);
        }
        const stream = await saveArchive({ content: this.content, records, format, platform: hostPlatform() });
        stream.once("close", release);
        this.options.logger.info("images saving", { references: records.map((r) => r.reference), format });
        return stream;
      } catch (err) {
        release();
        throw err;
      }
    });
  }

  push(reference: string, options: PushOptions = {}): Promise<PushResult> {
    return boundary(() =>
      this.lock.use(async () => {
        const started = Date.now();
        if (digestQuery(reference)?.fallback === false) {
          throw new ContainerError("invalidArgument", `cannot push ${reference}: an image is pushed by name`, { hint: "name it with `container image tag` first" });
        }
        const ref = parseReference(reference);
        const record = await this.find(reference);
        const pushed = await pushImage({
          ref,
          digest: record.digest,
          platform: hostPlatform(),
          content: this.content,
          registry: {
            ...(options.credentials ? { credentials: options.credentials } : {}),
            ...(options.insecureRegistries ? { insecure: options.insecureRegistries } : {}),
            ...(options.signal ? { signal: options.signal } : {}),
          },
          concurrency: transfers(options.maxConcurrentUploads, DEFAULT_CONCURRENT_UPLOADS, "uploads"),
          onProgress: options.onProgress ?? (() => undefined),
        });
        const name = familiarString(ref);
        this.options.logger.info("image pushed", { reference: name, digest: pushed.digest, size: pushed.size, ms: Date.now() - started });
        return { reference: name, ...pushed };
      }),
    );
  }

  /** The record a user's reference means: a name, a full digest or a unique digest prefix. */
  private async find(input: string): Promise<ImageRecord> {
    return (await this.match(input)).records[0]!;
  }

  /** The records a user's reference means: the one of a name, or every record of a digest (`byName` false). */
  private async match(input: string): Promise<{ records: ImageRecord[]; byName: boolean }> {
    const records = await this.records.list();
    const byDigest = digestQuery(input);
    if (byDigest && !byDigest.fallback) return { records: this.findByDigest(records, byDigest.hex, input), byName: false };
    let ref;
    try {
      ref = parseReference(input);
    } catch (err) {
      if (byDigest) return { records: this.findByDigest(records, byDigest.hex, input), byName: false };
      throw err;
    }
    const key = familiarString(ref);
    const exact = records.find((r) => r.reference === key);
    if (exact) return { records: [exact], byName: true };
    if (ref.digest !== undefined) {
      // name@digest: any record of that repository holding that image.
      const name = familiarName(ref);
      const match = records.find((r) => r.digest === ref.digest && !r.reference.startsWith("sha256:") && familiarName(parseReference(r.reference)) === name);
      if (match) return { records: [match], byName: true };
    }
    if (byDigest) return { records: this.findByDigest(records, byDigest.hex, input), byName: false };
    throw new ContainerError("notFound", `image ${input} not found`, { hint: "see `container image list`; load or pull it first" });
  }

  /** Every record of the one image whose digest starts with `hex`. */
  private findByDigest(records: ImageRecord[], hex: string, input: string): ImageRecord[] {
    const matches = records.filter((r) => digestHex(r.digest).startsWith(hex));
    if (matches.length === 0) throw new ContainerError("notFound", `no image has digest ${input}`);
    if (new Set(matches.map((r) => r.digest)).size > 1) {
      throw new ContainerError("invalidArgument", `digest prefix ${input} matches more than one image`, { hint: "give more digits" });
    }
    return matches;
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
              ...(this.options.maxLayerExpansion ? { expansion: this.options.maxLayerExpansion } : {}),
            }))().finally(() => this.unpacking.delete(manifestDigest));
      this.unpacking.set(manifestDigest, pending);
    }
    return pending;
  }
}

export function createImageStore(options: ImageStoreOptions): ImageStore {
  return new Store(options);
}
