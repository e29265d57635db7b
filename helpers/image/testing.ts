// Test fixtures: small tars, layers and image archives built with tar-stream.
// Used by the *.test.ts files only.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";
import { MEDIA } from "./oci.js";

const run = promisify(execFile);

export interface TarEntry {
  name: string;
  type?: tar.Header["type"];
  data?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  devmajor?: number;
  devminor?: number;
  /**
   * PAX records written raw (binary-safe) in a header before the entry, e.g.
   * `SCHILY.xattr.security.capability`; `path` and `linkpath` are added from
   * name and linkname.
   */
  paxRecords?: Record<string, string | Buffer>;
}

const EPOCH = new Date("2024-01-01T00:00:00Z");
/** The end-of-archive marker tar-stream's pack writes. */
const END_OF_TAR = 1024;

export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  // tar-stream cannot write binary PAX values, so entries with paxRecords get
  // a hand-made PAX header and a placeholder name, between packed runs.
  const parts: Buffer[] = [];
  let run: TarEntry[] = [];
  const flush = async (): Promise<void> => {
    if (run.length > 0) parts.push((await packEntries(run)).subarray(0, -END_OF_TAR));
    run = [];
  };
  for (const e of entries) {
    if (e.paxRecords === undefined) {
      run.push(e);
      continue;
    }
    await flush();
    const records = { path: e.name, ...(e.linkname ? { linkpath: e.linkname } : {}), ...e.paxRecords };
    parts.push(paxHeader(records));
    const placeholder = e.type === "directory" ? "pax-entry/" : "pax-entry";
    parts.push((await packEntries([{ ...e, name: placeholder, ...(e.linkname ? { linkname: "pax-link" } : {}) }])).subarray(0, -END_OF_TAR));
  }
  await flush();
  parts.push(Buffer.alloc(END_OF_TAR));
  return Buffer.concat(parts);
}

/** A PAX extended header ('x') and its records, padded to whole blocks. */
export function paxHeader(records: Record<string, string | Buffer>): Buffer {
  const body = Buffer.concat(
    Object.entries(records).map(([key, value]) => {
      const rest = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from("\n")]);
      let length = rest.length + 1;
      while (String(length).length + rest.length !== length) length = String(length).length + rest.length;
      return Buffer.concat([Buffer.from(String(length)), rest]);
    }),
  );
  const header = Buffer.alloc(512);
  header.write("PaxHeader", 0);
  header.write("0000644\0", 100);
  header.write("0000000\0", 108);
  header.write("0000000\0", 116);
  header.write(`${body.length.toString(8).padStart(11, "0")}\0`, 124);
  header.write("00000000000\0", 136);
  header.write("x", 156);
  header.write("ustar\0" + "00", 257);
  header.fill(" ", 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return Buffer.concat([header, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

async function packEntries(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? "file";
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    const header: tar.Header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === "directory" ? 0o755 : type === "symlink" ? 0o777 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? EPOCH,
      size: type === "file" ? data.length : 0,
      linkname: e.linkname ?? "",
      uname: "",
      gname: "",
      devmajor: e.devmajor ?? 0,
      devminor: e.devminor ?? 0,
    };
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (type === "file") pack.entry(header, data, done);
      else pack.entry(header, done); // no data: the entry is complete
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** The entries of a tar, in order, with their data. */
export async function readTar(bytes: Buffer): Promise<{ header: tar.Header; data: Buffer }[]> {
  const extract = tar.extract();
  const out: { header: tar.Header; data: Buffer }[] = [];
  extract.end(bytes);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push({ header: entry.header, data: Buffer.concat(chunks) });
  }
  return out;
}

/** Re-packs a tar, letting `edit` change or drop (null) each entry's data. */
export async function rewriteTar(bytes: Buffer, edit: (name: string, data: Buffer) => Buffer | null): Promise<Buffer> {
  const entries: TarEntry[] = [];
  for (const { header, data } of await readTar(bytes)) {
    const next = header.type === "file" ? edit(header.name, data) : data;
    if (next === null) continue;
    entries.push({ ...header, data: next });
  }
  return makeTar(entries);
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export interface ImageOptions {
  /** Uncompressed layer tars, bottom first. */
  layers: Buffer[];
  gzip?: boolean;
  /** The layers as stored, compressed by the test (give layerMediaType too); diff_ids still come from `layers`. */
  stored?: Buffer[];
  architecture?: string;
  manifestMediaType?: string;
  /** Overrides the layers' media type. */
  layerMediaType?: string;
  /** Overrides the config's rootfs.diff_ids. */
  diffIds?: string[];
}

export interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string };
  annotations?: Record<string, string>;
}

/** Builds the blobs of an OCI image layout, then the layout as one tar. */
export class LayoutBuilder {
  readonly blobs = new Map<string, Buffer>();

  add(bytes: Buffer): { digest: string; size: number } {
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    return { digest, size: bytes.length };
  }

  /** One image; returns its manifest's descriptor (with platform) and config's digest. */
  image(o: ImageOptions): { manifest: Desc; config: string } {
    const architecture = o.architecture ?? "amd64";
    const layers = o.layers.map((l, i) => ({
      mediaType: o.layerMediaType ?? (o.gzip ? MEDIA.ociLayerGzip : MEDIA.ociLayer),
      ...this.add(o.stored?.[i] ?? (o.gzip ? gzipSync(l) : l)),
    }));
    const config = {
      architecture,
      os: "linux",
      config: { Cmd: ["sh"], Env: ["PATH=/bin"] },
      rootfs: { type: "layers", diff_ids: o.diffIds ?? o.layers.map(sha256) },
    };
    const configDesc = { mediaType: MEDIA.ociConfig, ...this.add(Buffer.from(JSON.stringify(config))) };
    const mediaType = o.manifestMediaType ?? MEDIA.ociManifest;
    const manifest = { schemaVersion: 2, mediaType, config: configDesc, layers };
    return {
      manifest: { mediaType, ...this.add(Buffer.from(JSON.stringify(manifest))), platform: { os: "linux", architecture } },
      config: configDesc.digest,
    };
  }

  index(manifests: Desc[]): Desc {
    const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests };
    return { mediaType: MEDIA.ociIndex, ...this.add(Buffer.from(JSON.stringify(index))) };
  }

  /** The layout as a tar, index.json listing `manifests`; `omit` leaves blobs out. */
  tar(manifests: Desc[], o: { indexFirst?: boolean; omit?: string[]; extra?: TarEntry[] } = {}): Promise<Buffer> {
    const meta: TarEntry[] = [
      { name: "oci-layout", data: JSON.stringify({ imageLayoutVersion: "1.0.0" }) },
      { name: "index.json", data: JSON.stringify({ schemaVersion: 2, manifests }) },
      ...(o.extra ?? []),
    ];
    const blobs: TarEntry[] = [...this.blobs]
      .filter(([d]) => !o.omit?.includes(d))
      .map(([d, bytes]) => ({ name: `blobs/sha256/${d.slice(7)}`, data: bytes }));
    return makeTar(o.indexFirst ? [...meta, ...blobs] : [...blobs, ...meta]);
  }
}

export interface OciArchiveOptions extends ImageOptions {
  /** Index annotations of the one manifest. */
  annotations?: Record<string, string>;
  /** Put index.json before the blobs (default after). */
  indexFirst?: boolean;
}

/** An OCI image layout, as one tar, holding one image. */
export async function makeOciArchive(o: OciArchiveOptions): Promise<{ tar: Buffer; manifestDigest: string }> {
  const layout = new LayoutBuilder();
  const { manifest } = layout.image(o);
  const { platform: _platform, ...entry } = manifest;
  const tar = await layout.tar([{ ...entry, ...(o.annotations ? { annotations: o.annotations } : {}) }], { indexFirst: o.indexFirst ?? false });
  return { tar, manifestDigest: manifest.digest };
}

/** A legacy `docker save` archive (`<id>/layer.tar` files), one image. */
export async function makeDockerArchive(layers: Buffer[], repoTags: string[] | null): Promise<Buffer> {
  const config = {
    architecture: "amd64",
    os: "linux",
    config: { Cmd: ["sh"] },
    rootfs: { type: "layers", diff_ids: layers.map(sha256) },
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configName = `${sha256(configBytes).slice(7)}.json`;
  const layerNames = layers.map((_layer, i) => `${sha256(Buffer.from(String(i))).slice(7)}/layer.tar`);
  const manifest = [{ Config: configName, RepoTags: repoTags, Layers: layerNames }];
  return makeTar([
    ...layers.map((l, i) => ({ name: layerNames[i]!, data: l })),
    { name: configName, data: configBytes },
    { name: "manifest.json", data: JSON.stringify(manifest) },
  ]);
}

export async function debugfs(image: string, command: string): Promise<string> {
  const { stdout } = await run("debugfs", ["-R", command, image]);
  return stdout;
}

export async function e2fsck(image: string): Promise<void> {
  await run("e2fsck", ["-fn", image]);
}

/** Names in a directory of an ext4 image (no . and ..). */
export async function ext4List(image: string, dir: string): Promise<string[]> {
  const out = await debugfs(image, `ls -p ${dir}`);
  // ls -p: /inode/mode/uid/gid/name/size/
  return out
    .split("\n")
    .map((l) => l.split("/")[5])
    .filter((n): n is string => n !== undefined && n !== "" && n !== "." && n !== "..")
    .sort();
}
