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
}
