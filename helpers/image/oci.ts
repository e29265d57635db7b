// OCI image-spec documents: media types and shape checks. Docker's schema 2
// media types are accepted beside the OCI ones because the documents are
// structurally the same and `docker save` (v25+) writes them into OCI layouts;
// they are stored unchanged, since rewriting them would change their digests.
import { ContainerError } from "../../lib/errors/index.js";
import type { ImageConfig, Platform } from "./types.js";

export const MEDIA = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
} as const;

export const INDEX_TYPES: readonly string[] = [MEDIA.ociIndex, MEDIA.dockerList];
export const MANIFEST_TYPES: readonly string[] = [MEDIA.ociManifest, MEDIA.dockerManifest];
export const CONFIG_TYPES: readonly string[] = [MEDIA.ociConfig, MEDIA.dockerConfig];

export type Compression = "none" | "gzip" | "zstd";

const LAYER_COMPRESSION: Record<string, Compression> = {
  [MEDIA.ociLayer]: "none",
  [MEDIA.dockerLayer]: "none",
  [MEDIA.ociLayerGzip]: "gzip",
  [MEDIA.dockerLayerGzip]: "gzip",
  [MEDIA.ociLayerZstd]: "zstd",
};

/** The compression of a layer media type; undefined when it is not a layer we know. */
export function layerCompression(mediaType: string): Compression | undefined {
  return LAYER_COMPRESSION[mediaType];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The image config fields this project reads. */
export interface ConfigDocument {
  created?: string;
  os: string;
  architecture: string;
  variant?: string;
  config: ImageConfig;
  diffIds: string[];
}

function bad(what: string, why: string): ContainerError {
  return new ContainerError("invalidArgument", `${what}: ${why}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optString(v: unknown, what: string, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw bad(what, `${field} is not a string`);
  return v;
}

function optStrings(v: unknown, what: string, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) throw bad(what, `${field} is not a list of strings`);
  return v as string[];
}

function stringMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || !Object.values(v).every((s) => typeof s === "string")) throw bad(what, "annotations are not strings");
  return v as Record<string, string>;
}

/** Parses JSON bytes into an object; invalidArgument naming `what` otherwise. */
export function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw bad(what, "not valid JSON");
  }
  if (!isObject(value)) throw bad(what, "not a JSON object");
  return value;
}

export function checkDigest(digest: unknown, what: string): string {
  if (typeof digest !== "string") throw bad(what, "digest is missing");
  if (/^sha256:[a-f0-9]{64}$/.test(digest)) return digest;
  if (/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(digest) && !digest.startsWith("sha256:")) {
    throw new ContainerError("unsupported", `${what}: digest algorithm of ${digest} is not supported (only sha256)`);
  }
  throw bad(what, `bad digest "${digest}"`);
}

function parsePlatform(v: unknown, what: string): Platform | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || typeof v.os !== "string" || typeof v.architecture !== "string") throw bad(what, "bad platform");
  const variant = optString(v.variant, what, "platform.variant");
  return { os: v.os, architecture: v.architecture, ...(variant ? { variant } : {}) };
}

export function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw bad(what, "descriptor is not an object");
  if (typeof v.mediaType !== "string") throw bad(what, "descriptor has no mediaType");
  const digest = checkDigest(v.digest, what);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) throw bad(what, "descriptor has a bad size");
  const platform = parsePlatform(v.platform, what);
  const annotations = stringMap(v.annotations, what);
  return {
    mediaType: v.mediaType,
    digest,
    size: v.size,
    ...(platform ? { platform } : {}),
    ...(annotations ? { annotations } : {}),
  };
}

function checkSchema(doc: Record<string, unknown>, what: string, expected: readonly string[], declared?: string): void {
  if (doc.schemaVersion !== 2) throw bad(what, "schemaVersion is not 2");
  const own = optString(doc.mediaType, what, "mediaType");
  if (own !== undefined && !expected.includes(own)) throw bad(what, `unexpected media type ${own}`);
  if (declared !== undefined && own !== undefined && own !== declared) {
    throw bad(what, `media type ${own} does not match its descriptor's ${declared}`);
  }
}

export function parseIndex(doc: Record<string, unknown>, what: string, declared?: string): Index {
  checkSchema(doc, what, INDEX_TYPES, declared);
  if (!Array.isArray(doc.manifests)) throw bad(what, "manifests is not a list");
  const manifests = doc.manifests.map((d, i) => parseDescriptor(d, `${what} manifests[${i}]`));
  const annotations = stringMap(doc.annotations, what);
  return {
    schemaVersion: 2,
    ...(typeof doc.mediaType === "string" ? { mediaType: doc.mediaType } : {}),
    manifests,
    ...(annotations ? { annotations } : {}),
  };
}

export function parseManifest(doc: Record<string, unknown>, what: string, declared?: string): Manifest {
  checkSchema(doc, what, MANIFEST_TYPES, declared);
  const config = parseDescriptor(doc.config, `${what} config`);
  if (!CONFIG_TYPES.includes(config.mediaType)) {
    throw bad(what, `not a container image (config media type ${config.mediaType})`);
  }
  if (!Array.isArray(doc.layers)) throw bad(what, "layers is not a list");
  const layers = doc.layers.map((d, i) => {
    const layer = parseDescriptor(d, `${what} layers[${i}]`);
    if (layerCompression(layer.mediaType) === undefined) {
      throw bad(what, `layer ${layer.digest} has unsupported media type ${layer.mediaType}`);
    }
    return layer;
  });
  const annotations = stringMap(doc.annotations, what);
  return {
    schemaVersion: 2,
    ...(typeof doc.mediaType === "string" ? { mediaType: doc.mediaType } : {}),
    config,
    layers,
    ...(annotations ? { annotations } : {}),
  };
}

/** True when a parsed document is an index rather than a manifest. */
export function isIndexDocument(doc: Record<string, unknown>): boolean {
  return typeof doc.mediaType === "string" ? INDEX_TYPES.includes(doc.mediaType) : Array.isArray(doc.manifests);
}

export function parseConfig(doc: Record<string, unknown>, what: string): ConfigDocument {
  if (typeof doc.os !== "string" || typeof doc.architecture !== "string") throw bad(what, "os or architecture is missing");
  const c = doc.config ?? {};
  if (!isObject(c)) throw bad(what, "config is not an object");
  const rootfs = doc.rootfs;
  if (!isObject(rootfs) || rootfs.type !== "layers") throw bad(what, "rootfs is not of type layers");
  const diffIds = optStrings(rootfs.diff_ids, what, "rootfs.diff_ids").map((d, i) => checkDigest(d, `${what} diff_ids[${i}]`));
  const created = optString(doc.created, what, "created");
  const variant = optString(doc.variant, what, "variant");
  return {
    ...(created ? { created } : {}),
    os: doc.os,
    architecture: doc.architecture,
    ...(variant ? { variant } : {}),
    config: {
      entrypoint: optStrings(c.Entrypoint, what, "Entrypoint"),
      cmd: optStrings(c.Cmd, what, "Cmd"),
      env: optStrings(c.Env, what, "Env"),
      workingDir: optString(c.WorkingDir, what, "WorkingDir") ?? "",
      user: optString(c.User, what, "User") ?? "",
    },
    diffIds,
  };
}

/** A manifest's layers and its config's diff_ids pair up one to one. */
export function checkDiffIds(diffIds: number, layers: number, what: string): void {
  if (diffIds !== layers) throw bad(what, `${layers} layers but the config lists ${diffIds} diff_ids`);
}

export function configPlatform(config: ConfigDocument): Platform {
  return { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
}

const ARCH_ALIASES: Record<string, string> = { x86_64: "amd64", "x86-64": "amd64", aarch64: "arm64" };

function normArch(arch: string): string {
  return ARCH_ALIASES[arch] ?? arch;
}

/** Whether an image built for `have` runs on `want`; kernel-style arch names are accepted too. */
export function platformMatches(want: Platform, have: Platform): boolean {
  if (want.os !== have.os || normArch(want.architecture) !== normArch(have.architecture)) return false;
  if (want.variant === undefined) return true;
  // arm64 images without a variant are v8.
  const haveVariant = have.variant ?? (normArch(have.architecture) === "arm64" ? "v8" : undefined);
  return want.variant === haveVariant;
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** `os/arch[/variant]` as a Platform; invalidArgument otherwise. */
export function parsePlatformString(text: string): Platform {
  const parts = text.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p))) {
    throw new ContainerError("invalidArgument", `invalid platform "${text}"`, { hint: "use os/arch[/variant], e.g. linux/arm64" });
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return { os, architecture: normArch(architecture), ...(variant ? { variant } : {}) };
}

/** The platform this host runs natively: linux on its own CPU architecture. */
export function hostPlatform(arch: string = process.arch): Platform {
  return { os: "linux", architecture: arch === "x64" ? "amd64" : normArch(arch) };
}

/** Index children that are not runnable images (buildx attestations and the like). */
export function isAuxiliaryDescriptor(d: Descriptor): boolean {
  return d.platform?.os === "unknown" || d.annotations?.["vnd.docker.reference.type"] !== undefined;
}
