// Reads an image archive: an OCI image layout or a `docker save` archive, as
// one tar stream. Tar entries come in any order, so every file is first
// streamed into a private ingest directory (hashed on the way, never held in
// memory), and the archive is made sense of afterwards. Only blobs reachable
// from the archive's images are committed to the content store, and only once
// the whole archive checks out; the ingest directory is removed in every case.
//
// Names:
//   OCI layout: the `io.containerd.image.name` annotation, else
//     `org.opencontainers.image.ref.name` when it is a full reference (has a
//     `:` or `/`); a bare tag such as `latest` names no image, so the image
//     is loaded untagged (its record's reference is its digest). When docker
//     wrote the layout beside a manifest.json, that file's RepoTags fill in.
//   docker save: RepoTags; none means untagged.
// Docker archives hold a config and layer tars but no manifest: an OCI
// manifest is synthesised for them, so the store holds OCI images only.
import fs from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
import tar from "tar-stream";
import { ContainerError } from "../../lib/errors/index.js";
import type { Logger } from "../../lib/log/index.js";
import { MAX_DOCUMENT_BYTES, digestHex, digestOf, type ContentStore, type Ingested } from "./content/index.js";
import {
  INDEX_TYPES,
  MANIFEST_TYPES,
  MEDIA,
  checkDiffIds,
  configPlatform,
  isAuxiliaryDescriptor,
  parseConfig,
  parseIndex,
  parseJson,
  parseManifest,
  type Descriptor,
  type Manifest,
} from "./oci.js";
import { normalizeReference } from "./reference.js";
import type { Platform } from "./types.js";

/** One image found in an archive, its content committed to the store. */
export interface LoadedImage {
  /** Familiar references; empty when the image is untagged. */
  names: string[];
  digest: string;
  platforms: Platform[];
  size: number;
  createdAt?: string;
}

const BLOB_PATH = /^blobs\/sha256\/([a-f0-9]{64})$/;
const MAX_LINK_HOPS = 16;

function invalid(message: string): ContainerError {
  return new ContainerError("invalidArgument", message);
}

/** An archive path as a key: no leading `./` or `/`, no trailing `/`. */
function archivePath(name: string): string {
  return path.posix.normalize("/" + name).slice(1).replace(/\/$/, "");
}

/** The archive's files, by path, as ingested; links are followed on lookup. */
class Archive {
  readonly files = new Map<string, Ingested>();
  readonly links = new Map<string, string>();

  get(name: string): Ingested | undefined {
    let key = archivePath(name);
    for (let hops = 0; hops < MAX_LINK_HOPS; hops++) {
      const file = this.files.get(key);
      if (file) return file;
      const next = this.links.get(key);
      if (next === undefined) return undefined;
      key = next;
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  blob(digest: string): Ingested | undefined {
    return this.get(`blobs/sha256/${digestHex(digest)}`);
  }

  async json(file: Ingested, what: string): Promise<Record<string, unknown>> {
    if (file.size > MAX_DOCUMENT_BYTES) throw invalid(`${what}: too big for a JSON document`);
    return parseJson(await fs.readFile(file.path), what);
  }
}

async function readEntries(input: NodeJS.ReadableStream | Readable, content: ContentStore, dir: string): Promise<Archive> {
  const archive = new Archive();
  const extract = tar.extract();
  let inputFailed: unknown;
  input.once("error", (err) => (inputFailed ??= err));
  const feeding = pipeline(input, extract);
  feeding.catch(() => undefined); // surfaces through the iteration below
  try {
    for await (const entry of extract) {
      const { header } = entry;
      const name = archivePath(header.name);
      if (header.type === "file" || header.type === "contiguous-file") {
        const file = await content.writeIngest(dir, entry);
        const blob = BLOB_PATH.exec(name);
        if (blob && file.digest !== `sha256:${blob[1]}`) {
          throw invalid(`blob sha256:${blob[1]} failed verification: content hashes to ${file.digest}`);
        }
        archive.files.set(name, file);
      } else {
        if (header.type === "symlink" && header.linkname) {
          const target = header.linkname.startsWith("/") ? header.linkname : path.posix.join(path.posix.dirname(name), header.linkname);
          archive.links.set(name, archivePath(target));
        } else if (header.type === "link" && header.linkname) {
          archive.links.set(name, archivePath(header.linkname));
        }
        entry.resume();
      }
    }
    await feeding;
  } catch (err) {
    if (err instanceof ContainerError) throw err;
    if (inputFailed !== undefined) throw inputFailed;
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOSPC") throw new ContainerError("resourceExhausted", "no space left to store the image", { cause: err });
    if (e.syscall !== undefined) throw err; // our file system, not the archive
    throw invalid(`not a valid tar archive: ${e.message}`);
  }
  return archive;
}

/** What a load will commit: the verified files, by digest. */
class Plan {
  readonly blobs = new Map<string, { file: Ingested; size: number }>();
  readonly documents = new Map<string, Buffer>();

  constructor(private readonly archive: Archive) {}

  /** The archive file for `desc`; it must be there with the descriptor's size. */
  need(desc: Descriptor, what: string): Ingested {
    const file = this.archive.blob(desc.digest);
    if (!file) throw invalid(`${what} ${desc.digest} is missing from the archive`);
    if (file.size !== desc.size) throw invalid(`${what} ${desc.digest} is ${file.size} bytes, its descriptor says ${desc.size}`);
    this.blobs.set(desc.digest, { file, size: desc.size });
    return file;
  }
}

interface Walked {
  platforms: Platform[];
  createdAt?: string;
  configDigest?: string;
  /** Sizes of every blob the image references, by digest. */
  sizes: Map<string, number>;
}

/** Checks an OCI index or manifest and everything below it; adds it all to `plan`. */
async function walk(desc: Descriptor, archive: Archive, plan: Plan, logger: Logger, depth = 0): Promise<Walked> {
  const sizes = new Map([[desc.digest, desc.size]]);
  if (INDEX_TYPES.includes(desc.mediaType)) {
    if (depth > 2) throw invalid(`index ${desc.digest}: indexes nested too deep`);
    const what = `index ${desc.digest}`;
    const index = parseIndex(await archive.json(plan.need(desc, "index"), what), what, desc.mediaType);
    const platforms: Platform[] = [];
    let createdAt: string | undefined;
    for (const child of index.manifests) {
      if (isAuxiliaryDescriptor(child)) continue;
      // A multi-platform image is often saved with only some platforms' content.
      if (!archive.blob(child.digest)) {
        logger.debug("index entry not in archive, skipped", { index: desc.digest, manifest: child.digest });
        continue;
      }
      const sub = await walk(child, archive, plan, logger, depth + 1);
      platforms.push(...(child.platform ? [child.platform] : sub.platforms));
      createdAt ??= sub.createdAt;
      for (const [d, s] of sub.sizes) sizes.set(d, s);
    }
    if (platforms.length === 0) throw invalid(`${what}: none of its images is in the archive`);
    return { platforms, sizes, ...(createdAt ? { createdAt } : {}) };
  }
  if (!MANIFEST_TYPES.includes(desc.mediaType)) {
    throw invalid(`${desc.digest} has media type ${desc.mediaType}, expected an image manifest or index`);
  }
  const what = `manifest ${desc.digest}`;
  const manifest = parseManifest(await archive.json(plan.need(desc, "manifest"), what), what, desc.mediaType);
  const config = parseConfig(await archive.json(plan.need(manifest.config, "config"), `config ${manifest.config.digest}`), `config ${manifest.config.digest}`);
  checkDiffIds(config.diffIds.length, manifest.layers.length, what);
  sizes.set(manifest.config.digest, manifest.config.size);
  for (const layer of manifest.layers) {
    plan.need(layer, "layer");
    sizes.set(layer.digest, layer.size);
  }
  return {
    platforms: [configPlatform(config)],
    configDigest: manifest.config.digest,
    sizes,
    ...(config.created ? { createdAt: config.created } : {}),
  };
}

function sum(sizes: Map<string, number>): number {
  let total = 0;
  for (const s of sizes.values()) total += s;
  return total;
}

interface DockerEntry {
  config: string;
  repoTags: string[];
  layers: string[];
}

async function dockerManifest(archive: Archive): Promise<DockerEntry[]> {
  const file = archive.get("manifest.json");
  if (!file) return [];
  if (file.size > MAX_DOCUMENT_BYTES) throw invalid("manifest.json: too big");
  let doc: unknown;
  try {
    doc = JSON.parse(await fs.readFile(file.path, "utf8"));
  } catch {
    throw invalid("manifest.json: not valid JSON");
  }
  if (!Array.isArray(doc)) throw invalid("manifest.json: not a list");
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string");
  return doc.map((e: unknown, i) => {
    const entry = (typeof e === "object" && e !== null ? e : {}) as Record<string, unknown>;
    if (typeof entry.Config !== "string" || !strings(entry.Layers) || !(entry.RepoTags == null || strings(entry.RepoTags))) {
      throw invalid(`manifest.json[${i}]: expected Config, Layers and RepoTags`);
    }
    return { config: entry.Config, repoTags: (entry.RepoTags as string[] | null) ?? [], layers: entry.Layers };
  });
}

function layerMediaType(file: Ingested, name: string): string {
  const h = file.head;
  if (h[0] === 0x1f && h[1] === 0x8b) return MEDIA.ociLayerGzip;
  if (h.readUInt32BE(0) === 0x28b52ffd) return MEDIA.ociLayerZstd;
  if (h.subarray(0, 3).toString("latin1") === "BZh" || h.readUInt32BE(0) === 0xfd377a58) {
    throw new ContainerError("unsupported", `layer ${name} is compressed with bzip2 or xz, which is not supported`);
  }
  return MEDIA.ociLayer;
}

async function fromOciLayout(archive: Archive, plan: Plan, logger: Logger): Promise<LoadedImage[]> {
  const layout = await archive.json(archive.get("oci-layout")!, "oci-layout");
  if (typeof layout.imageLayoutVersion !== "string" || !layout.imageLayoutVersion.startsWith("1.")) {
    throw new ContainerError("unsupported", `oci-layout: unsupported imageLayoutVersion ${JSON.stringify(layout.imageLayoutVersion)}`);
  }
  const index = parseIndex(await archive.json(archive.get("index.json")!, "index.json"), "index.json");
  // docker save (v25+) writes a manifest.json beside the layout: its RepoTags
  // name manifests whose index entries carry no usable name.
  const dockerNames = new Map<string, string[]>();
  for (const e of await dockerManifest(archive)) {
    const config = archive.get(e.config);
    if (config) dockerNames.set(config.digest, e.repoTags);
  }
  const images: LoadedImage[] = [];
  for (const desc of index.manifests) {
    if (isAuxiliaryDescriptor(desc)) continue;
    const walked = await walk(desc, archive, plan, logger);
    const names = annotatedName(desc);
    images.push({
      names: (names ?? dockerNames.get(walked.configDigest ?? "") ?? []).map(normalizeReference),
      digest: desc.digest,
      platforms: walked.platforms,
      size: sum(walked.sizes),
      ...(walked.createdAt ? { createdAt: walked.createdAt } : {}),
    });
  }
  return images;
}

function annotatedName(desc: Descriptor): string[] | undefined {
  const full = desc.annotations?.["io.containerd.image.name"];
  if (full) return [full];
  const ref = desc.annotations?.["org.opencontainers.image.ref.name"];
  return ref && /[:/]/.test(ref) ? [ref] : undefined;
}

async function fromDockerArchive(archive: Archive, plan: Plan): Promise<LoadedImage[]> {
  const entries = await dockerManifest(archive);
  if (entries.length === 0) throw invalid("manifest.json lists no images");
  const images: LoadedImage[] = [];
  for (const [i, entry] of entries.entries()) {
    const what = `manifest.json[${i}]`;
    const configFile = archive.get(entry.config);
    if (!configFile) throw invalid(`${what}: config ${entry.config} is missing from the archive`);
    const config = parseConfig(await archive.json(configFile, `config ${entry.config}`), `config ${entry.config}`);
    const configDesc: Descriptor = { mediaType: MEDIA.ociConfig, digest: configFile.digest, size: configFile.size };
    plan.blobs.set(configDesc.digest, { file: configFile, size: configFile.size });
    const layers = entry.layers.map((name): Descriptor => {
      const file = archive.get(name);
      if (!file) throw invalid(`${what}: layer ${name} is missing from the archive`);
      plan.blobs.set(file.digest, { file, size: file.size });
      return { mediaType: layerMediaType(file, name), digest: file.digest, size: file.size };
    });
    checkDiffIds(config.diffIds.length, layers.length, what);
    const manifest: Manifest = { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: configDesc, layers };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const digest = digestOf(bytes);
    plan.documents.set(digest, bytes);
    images.push({
      names: entry.repoTags.map(normalizeReference),
      digest,
      platforms: [configPlatform(config)],
      size: bytes.length + configDesc.size + layers.reduce((n, l) => n + l.size, 0),
      ...(config.created ? { createdAt: config.created } : {}),
    });
  }
  return images;
}

/**
 * Reads an archive from `input` into the content store and returns its
 * images. The input is read to the end, or destroyed on failure.
 */
export async function loadArchive(
  input: NodeJS.ReadableStream | Readable,
  content: ContentStore,
  logger: Logger,
): Promise<LoadedImage[]> {
  const dir = await content.ingestDir();
  try {
    const archive = await readEntries(input, content, dir);
    const plan = new Plan(archive);
    let images: LoadedImage[];
    if (archive.has("oci-layout") && archive.has("index.json")) {
      images = await fromOciLayout(archive, plan, logger);
    } else if (archive.has("manifest.json")) {
      images = await fromDockerArchive(archive, plan);
    } else {
      throw invalid("archive is neither an OCI image layout nor a docker save archive");
    }
    if (images.length === 0) throw invalid("archive holds no images");
    // Leaves before the documents that point at them: walk() added parents first.
    for (const [digest, { file, size }] of [...plan.blobs].reverse()) await content.commit(file, { digest, size });
    for (const bytes of plan.documents.values()) await content.put(bytes);
    return images;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
