// Pure readings of what the bench collects: /proc/meminfo, the apiserver's
// JSON-lines log, byte counts over time.

export interface MemInfo {
  totalBytes: number;
  availableBytes: number;
}

/** MemTotal and MemAvailable of a /proc/meminfo text. */
export function parseMeminfo(text: string): MemInfo {
  const kib = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(text);
    if (!m) throw new Error(`no ${key} in /proc/meminfo`);
    return Number(m[1]) * 1024;
  };
  return { totalBytes: kib("MemTotal"), availableBytes: kib("MemAvailable") };
}

/** Memory in use: what the kernel could not hand out without swapping or dropping caches. */
export function usedBytes(m: MemInfo): number {
  return m.totalBytes - m.availableBytes;
}

export interface UnpackRecord {
  manifest: string;
  /** File bytes written into the ext4 (the layers' content). */
  bytes: number;
  /** The ext4 image's size. */
  size: number;
  ms: number;
}

/** The apiserver's "rootfs unpacked" log records (helpers/image/unpack), oldest first; other lines are skipped. */
export function unpackRecords(log: string): UnpackRecord[] {
  const out: UnpackRecord[] = [];
  for (const line of log.split("\n")) {
    if (!line.includes('"rootfs unpacked"')) continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (rec.msg !== "rootfs unpacked") continue;
    const { manifest, bytes, size, ms } = rec;
    if (typeof manifest !== "string" || typeof bytes !== "number" || typeof size !== "number" || typeof ms !== "number") continue;
    out.push({ manifest, bytes, size, ms });
  }
  return out;
}

export const MB = 1e6;
export const MiB = 1024 * 1024;

/** Throughput in MB/s (10^6 bytes per second, as dd prints it). */
export function mbPerSecond(bytes: number, ms: number): number {
  return bytes / MB / (ms / 1000);
}
