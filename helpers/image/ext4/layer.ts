// Reads one layer tar (uncompressed) into entries with their metadata,
// binary-safe: names, link targets and xattr names are byte strings (one
// char a byte, latin1), since tar stores bytes and Linux names need not be
// UTF-8.
//
// tar-stream does the parsing, but decodes PAX records as UTF-8, which
// mangles binary values such as `SCHILY.xattr.security.capability`. So a
// pass-through in front of it follows the same headers and keeps each PAX
// record set as bytes, keyed by the offset of the entry's data (what
// tar-stream reports as header.byteOffset).
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import type { Timestamp } from "./layout.js";

export interface LayerEntry {
  /** Path as in the tar (bytes as latin1). */
  name: string;
  /** tar-stream's type name ("file", "directory", …); undefined for typeflags it does not know. */
  type: string | undefined;
  /** Permission bits, set-id and sticky included. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Symlink or hard link target (bytes as latin1). */
  linkname: string;
  devmajor: number;
  devminor: number;
  mtime: Timestamp;
  atime: Timestamp;
  ctime: Timestamp;
  /** SCHILY.xattr.* records: [name (bytes as latin1), value]. */
  xattrs: [string, Buffer][];
  /** The entry's data; what is left unread is skipped when the next entry is asked for. */
  body: AsyncIterable<Buffer>;
}

type Records = Map<string, Buffer>;
type ExtractEntry = AsyncIterable<Buffer> & { header: tar.Header & { byteOffset: number }; resume(): unknown };

const XATTR = "SCHILY.xattr.";

/** The entries of a layer, in order. Each entry's data is drained when the next is asked for. */
export async function* readLayer(source: AsyncIterable<Buffer>): AsyncGenerator<LayerEntry> {
  const pax = new PaxRecorder();
  // tar-stream takes this option at run time; its types do not list it.
  const extract = tar.extract({ filenameEncoding: "latin1" } as Parameters<typeof tar.extract>[0]);
  const feeding = pipeline(source, pax, extract);
  feeding.catch(() => undefined); // surfaces through the iteration below
  for await (const raw of extract as AsyncIterable<ExtractEntry>) {
    yield toEntry(raw, pax.recordsAt(raw.header.byteOffset));
    raw.resume();
  }
  await feeding;
}

function toEntry(raw: ExtractEntry, records: Records | undefined): LayerEntry {
  const h = raw.header;
  const text = (key: string): string | undefined => records?.get(key)?.toString("latin1");
  const number = (key: string, fallback: number): number => {
    const value = Number.parseInt(text(key) ?? "", 10);
    return Number.isSafeInteger(value) && value >= 0 ? value : fallback;
  };
  const mtime = paxTime(text("mtime")) ?? { sec: Math.floor((h.mtime?.getTime() ?? 0) / 1000), nsec: 0 };
  const xattrs: [string, Buffer][] = [];
  for (const [key, value] of records ?? []) if (key.startsWith(XATTR)) xattrs.push([key.slice(XATTR.length), value]);
  return {
    name: text("path") ?? h.name,
    type: h.type ?? undefined,
    mode: (h.mode ?? 0) & 0o7777,
    uid: number("uid", h.uid ?? 0),
    gid: number("gid", h.gid ?? 0),
    size: h.size ?? 0,
    linkname: text("linkpath") ?? h.linkname ?? "",
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
    mtime,
    atime: paxTime(text("atime")) ?? mtime,
    ctime: paxTime(text("ctime")) ?? mtime,
    xattrs,
    body: raw,
  };
}

/** A PAX time: decimal seconds with an optional fraction, possibly negative. */
function paxTime(value: string | undefined): Timestamp | undefined {
  const m = value === undefined ? null : /^(-?)(\d+)(?:\.(\d*))?$/.exec(value);
  if (!m) return undefined;
  const whole = Number(m[2]);
  const nsec = Number((m[3] ?? "").slice(0, 9).padEnd(9, "0"));
  if (m[1] !== "-") return { sec: whole, nsec };
  return nsec === 0 ? { sec: -whole, nsec: 0 } : { sec: -whole - 1, nsec: 1e9 - nsec };
}

const HEADER = 512;
const MAX_PAX_BYTES = 4 * 1024 * 1024; // tar-stream's limit

/**
 * Passes the tar through untouched while following its headers the way
 * tar-stream does, and keeps the PAX records ('x', merged over the last 'g')
 * of each entry, by the offset of the entry's data.
 */
class PaxRecorder extends Transform {
  private readonly found = new Map<number, Records>();
  private offset = 0;
  private readonly header = Buffer.alloc(HEADER);
  private headerFill = 0;
  private skip = 0;
  /** A PAX header's data being collected. */
  private collecting: { global: boolean; data: Buffer; fill: number } | undefined;
  private global: Records | undefined;
  private pending: Records | undefined;
  /** Set when a header cannot be followed (tar-stream fails on it too). */
  private lost = false;

  /** The records of the entry whose data starts at `dataOffset`, once. */
  recordsAt(dataOffset: number): Records | undefined {
    const records = this.found.get(dataOffset);
    this.found.delete(dataOffset);
    return records;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (!this.lost) this.follow(chunk);
    this.offset += chunk.length;
    done(null, chunk);
  }

  private follow(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.lost) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
      } else if (this.collecting) {
        const c = this.collecting;
        const n = chunk.copy(c.data, c.fill, i, i + Math.min(c.data.length - c.fill, chunk.length - i));
        c.fill += n;
        i += n;
        if (c.fill === c.data.length) {
          this.collecting = undefined;
          this.skip = padding(c.data.length);
          const records = parseRecords(c.data);
          if (c.global) this.global = records;
          else this.pending = new Map([...(this.global ?? []), ...records]);
        }
      } else {
        const n = chunk.copy(this.header, this.headerFill, i, i + Math.min(HEADER - this.headerFill, chunk.length - i));
        this.headerFill += n;
        i += n;
        if (this.headerFill === HEADER) {
          this.headerFill = 0;
          this.onHeader(this.offset + i);
        }
      }
    }
  }

  private onHeader(dataOffset: number): void {
    const h = this.header;
    if (isNullHeader(h)) return;
    let size = parseNumber(h.subarray(124, 136));
    if (size === undefined || size < 0) {
      this.lost = true;
      return;
    }
    const flag = h[156]!;
    if (flag === 0x78 /* x */ || flag === 0x67 /* g */) {
      // tar-stream ignores empty PAX headers and rejects huge ones.
      if (size > MAX_PAX_BYTES) this.lost = true;
      else if (size > 0) this.collecting = { global: flag === 0x67, data: Buffer.alloc(size), fill: 0 };
      return;
    }
    if (flag === 0x4c /* L */ || flag === 0x4b /* K */) {
      this.skip = size + padding(size);
      return;
    }
    if (this.pending) {
      const paxSize = this.pending.get("size")?.toString("latin1");
      if (paxSize) size = Number.parseInt(paxSize, 10); // as tar-stream: a non-empty size record wins
      this.found.set(dataOffset, this.pending);
      this.pending = undefined;
      if (Number.isNaN(size)) {
        this.lost = true;
        return;
      }
    }
    // tar-stream reads no data for directories, whatever their size says.
    this.skip = isDirectory(h) ? 0 : size + padding(size);
  }
}

function padding(size: number): number {
  return (HEADER - (size % HEADER)) % HEADER;
}

/** An all-zero header (bar the checksum field): the end-of-archive marker tar-stream steps over. */
function isNullHeader(h: Buffer): boolean {
  for (let i = 0; i < HEADER; i++) if (h[i] !== 0 && (i < 148 || i >= 156)) return false;
  return true;
}

function isDirectory(h: Buffer): boolean {
  const flag = h[156];
  if (flag === 0x35 /* 5 */) return true;
  if (flag !== 0 && flag !== 0x30) return false;
  // Old tars mark directories by a trailing slash on a plain-file entry.
  const nameEnd = h.indexOf(0);
  const end = nameEnd === -1 || nameEnd > 100 ? 100 : nameEnd;
  if (end > 0) return h[end - 1] === 0x2f;
  return h.subarray(257, 263).toString("latin1") === "ustar\0" && h[345] !== 0;
}

/** A numeric header field: octal text, or base-256 when the first byte has its top bit set. */
function parseNumber(field: Buffer): number | undefined {
  if (field[0]! & 0x80) {
    if (field[0] !== 0x80 && field[0] !== 0xff) return undefined;
    const negative = field[0] === 0xff;
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + (negative ? 0xff - field[i]! : field[i]!);
    return negative ? -value : value;
  }
  const text = field.toString("latin1").replace(/^ +/, "").split(" ")[0]!.replace(/^\0+/, "");
  if (text === "") return 0;
  const value = Number.parseInt(text, 8);
  return Number.isNaN(value) ? undefined : value;
}

/** PAX records ("<length> <key>=<value>\n"), values as bytes; stops where tar-stream would. */
function parseRecords(data: Buffer): Records {
  const records: Records = new Map();
  let rest = data;
  while (rest.length > 0) {
    const space = rest.indexOf(0x20);
    const length = Number.parseInt(rest.subarray(0, space === -1 ? rest.length : space).toString("latin1"), 10);
    if (!length) break;
    const record = rest.subarray(space + 1, length - 1);
    const eq = record.indexOf(0x3d);
    if (eq === -1) break;
    records.set(record.subarray(0, eq).toString("latin1"), Buffer.from(record.subarray(eq + 1)));
    rest = rest.subarray(length);
  }
  return records;
}
