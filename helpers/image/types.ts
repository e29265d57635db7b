// The seam the apiserver depends on: types only. The implementation is
// createImageStore() in ./index.ts. Errors are ContainerErrors (lib/errors).
import type { Readable } from "node:stream";

/** The parts of an OCI image config that decide how the container's process starts. */
export interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  /** `KEY=value` strings, in image order. */
  env: string[];
  /** "" when the image does not set one. */
  workingDir: string;
  /** "" when the image does not set one (root). */
  user: string;
}

/** OCI platform names: os "linux", architecture "amd64" | "arm64" | …, variant "v8" | …. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ImageRecord {
  /**
   * The name as `docker images` would show it, normalised: `demo:latest`,
   * `user/app:1`, `ghcr.io/org/app:2` (docker.io/library/ is dropped). An image
   * loaded without a usable name (e.g. an OCI layout whose ref.name is only a
   * tag) is kept untagged, and its reference is its digest.
   */
  reference: string;
  /** `sha256:…` of the index or manifest the reference points at. */
  digest: string;
  /** The platforms whose content is in the store. */
  platforms: Platform[];
  /** Bytes of stored content: manifests, configs and (compressed) layers. */
  size: number;
  /** The image config's `created`, when it has one. */
  createdAt?: string;
}

export interface ResolvedImage {
  /** The record's reference (normalised, see ImageRecord). */
  reference: string;
  /** `sha256:…` of the platform's image manifest. */
  manifestDigest: string;
  platform: Platform;
  config: ImageConfig;
  /**
   * The flattened root filesystem, an ext4 image shared by every container of
   * this manifest: treat it as read-only (copy or overlay it to write).
   */
  rootfsPath: string;
}

/** Nothing to choose yet; room for a platform filter or progress reporting. */
export interface LoadOptions {}

/** How far one blob of a pull has come; sent when it starts, as it goes, and once stored. */
export interface PullProgress {
  digest: string;
  /** Bytes downloaded so far; equals `total` once verified and stored. */
  done: number;
  total: number;
  /** Already in the store: nothing was downloaded. */
  present: boolean;
}

export interface PullOptions {
  /** The platform to pull from a multi-platform image; the host's by default. */
  platform?: Platform;
  /** Registries (`host[:port]`) spoken to over plain http; loopback ones always are. */
  insecureRegistries?: string[];
  /** For the reference's registry; anonymous without. */
  credentials?: { username: string; password: string };
  /** Layers downloaded at once; 3 by default. */
  maxConcurrentDownloads?: number;
  /** Per-layer progress; called often, keep it cheap. */
  onProgress?: (progress: PullProgress) => void;
  /** Aborts the pull: it fails with `cancelled`, nothing is recorded. */
  signal?: AbortSignal;
}

/**
 * The images containers were created from: manifest digest (a container
 * record's imageDigest) to the names of the containers. Garbage collection
 * and removal keep what these reach, whatever the records say.
 */
export type ImageUsers = ReadonlyMap<string, readonly string[]>;

export interface ImageLayer {
  digest: string;
  mediaType: string;
  /** Compressed bytes, as stored. */
  size: number;
}

/** One image in full (inspect): the record, and the manifest of one of its platforms. */
export interface ImageDetail extends ImageRecord {
  /** Media type of the document `digest` names (an index or a manifest). */
  mediaType: string;
  /** The manifest shown: the host platform's when stored, else the first one stored. */
  manifestDigest: string;
  platform: Platform;
  configDigest: string;
  config: ImageConfig;
  layers: ImageLayer[];
}

export interface RemoveOptions {
  /**
   * Docker's -f: remove a name even when it is an image's last and containers
   * use it (the image stays, untagged, until they are gone), and every name of
   * an image given by digest.
   */
  force?: boolean;
  users: ImageUsers;
}

export interface RemoveResult {
  /** The names (references) removed. */
  untagged: string[];
  /** Digests of the images whose last record went, their content with them. */
  deleted: string[];
  /** Bytes the removal freed (blobs and unpacked rootfs); 0 while other work held the store (the next prune frees them). */
  reclaimedBytes: number;
}

export interface PruneOptions {
  /** Every image no container uses, not only the untagged (dangling) ones. */
  all?: boolean;
  users: ImageUsers;
}

export interface PruneResult {
  /** References of the records removed. */
  removed: string[];
  blobs: number;
  snapshots: number;
  reclaimedBytes: number;
}

/** What the store takes on disk: totals and what a prune -a would free. */
export interface StoreUsage {
  images: { total: number; active: number; bytes: number; reclaimable: number };
  /** The flattened rootfs images (snapshots/). */
  snapshots: { total: number; active: number; bytes: number; reclaimable: number };
  /** Per distinct image: its records' references and the containers using it. */
  perImage: { references: string[]; digest: string; size: number; containers: number }[];
}

export type SaveFormat = "oci" | "docker";

export interface PushOptions {
  /** Registries (`host[:port]`) spoken to over plain http; loopback ones always are. */
  insecureRegistries?: string[];
  credentials?: { username: string; password: string };
  /** Blobs uploaded at once; 3 by default. */
  maxConcurrentUploads?: number;
  /** Per-blob progress, as for pulls (`present`: the registry had it). */
  onProgress?: (progress: PullProgress) => void;
  signal?: AbortSignal;
}

export interface PushResult {
  reference: string;
  /** Digest of the document the reference now names on the registry. */
  digest: string;
  /** Bytes of the manifests and blobs the image is made of. */
  size: number;
}

export interface ImageStore {
  /**
   * Imports a `docker save` archive or an OCI image layout, as one tar stream.
   * Resolves with the records created or replaced (an existing name moves to
   * the loaded image). The input is read to its end; on failure nothing is
   * recorded and the input is destroyed.
   */
  load(input: NodeJS.ReadableStream | Readable, options?: LoadOptions): Promise<ImageRecord[]>;
  /**
   * Fetches an image from its registry (`registry/`) and records it under
   * `reference` exactly as load() would. Every blob is verified (digest and
   * size) before it is stored; on failure nothing is recorded.
   */
  pull(reference: string, options?: PullOptions): Promise<ImageRecord>;
  /** Every image, sorted by reference. */
  list(): Promise<ImageRecord[]>;
  /**
   * Finds an image by name (`demo`, `demo:latest`, `docker.io/library/demo`),
   * full digest or unique digest prefix, picks the manifest for `platform` and
   * returns its flattened rootfs, unpacking it on first use. Concurrent calls
   * for one manifest share one unpack; the rootfs appears atomically.
   */
  resolve(reference: string, platform: Platform): Promise<ResolvedImage>;
  /** Gives `source`'s image the name `target` (moved from any image that had it). */
  tag(source: string, target: string): Promise<ImageRecord>;
  /**
   * Removes names (by name) or images (by digest), all or nothing, then frees
   * the content nothing reaches any more. An image's last name goes only if
   * no container uses it (see RemoveOptions.force); an image given by digest
   * that several names share goes only with force.
   */
  remove(references: string[], options: RemoveOptions): Promise<RemoveResult>;
  inspect(reference: string): Promise<ImageDetail>;
  /**
   * The images as one tar stream: an OCI image layout, or (`docker`) the same
   * with a `docker save` manifest.json beside it, which docker load and
   * skopeo's docker-archive read. References are checked before the stream
   * starts; the content stays held against garbage collection until it ends.
   */
  save(references: string[], format: SaveFormat): Promise<Readable>;
  /** Uploads an image to the registry its reference names (OCI distribution). */
  push(reference: string, options?: PushOptions): Promise<PushResult>;
  /** Removes untagged images (every unused one with `all`), then the content nothing reaches. */
  prune(options: PruneOptions): Promise<PruneResult>;
  usage(users: ImageUsers): Promise<StoreUsage>;
  /**
   * Runs `fn` with the store held against garbage collection: a container
   * being created from a resolved rootfs, until its record exists.
   */
  use<T>(fn: () => Promise<T>): Promise<T>;
}
