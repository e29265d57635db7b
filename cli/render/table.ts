// Plain text tables: columns padded to the widest cell, the last one unpadded.
// On a terminal they fit its width: the widest columns give way first, and a
// cut cell ends in "…" (Docker cuts its COMMAND column the same way).

const GAP = 3;
/** No column shrinks below this (or its header). */
const MIN_WIDTH = 8;

/** `width`: the terminal's columns; undefined (not a terminal) never cuts. */
export function renderTable(headers: string[], rows: string[][], width = process.stdout.isTTY ? process.stdout.columns : undefined): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  if (width !== undefined) fit(widths, headers, width);
  const cut = (c: string, w: number): string => (c.length > w ? `${c.slice(0, Math.max(0, w - 1))}…` : c);
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? cut(c, widths[i]!) : cut(c, widths[i]!).padEnd(widths[i]! + GAP))).join("").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/** Shrinks the widest columns, one character at a time, until the row fits `width` or nothing can give. */
function fit(widths: number[], headers: string[], width: number): void {
  const floor = headers.map((h) => Math.max(h.length, MIN_WIDTH));
  let total = widths.reduce((a, b) => a + b, 0) + GAP * (widths.length - 1);
  while (total > width) {
    let widest = -1;
    widths.forEach((w, i) => {
      if (w > floor[i]! && (widest === -1 || w > widths[widest]!)) widest = i;
    });
    if (widest === -1) return;
    widths[widest]!--;
    total--;
  }
}

export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 999.95 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatAgo(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.round(s / 3600)} hours ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** JSON for `--format json`; 64-bit protobuf integers (bigint) print as numbers. */
export function renderJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v), 2) + "\n";
}
