// The image names: <root>/images.json, { version, images: ImageRecord[] }.
// Rewritten whole on every change (temp file + fsync + rename), one change at
// a time within the process.
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { ContainerError } from "../../../lib/errors/index.js";
import type { ImageRecord } from "../types.js";
import { Mutex } from "./mutex.js";

const VERSION = 1;

export class ImageRecords {
  private readonly file: string;
  private readonly mutex = new Mutex();

  constructor(file: string) {
    this.file = file;
  }

  /** Every record, sorted by reference. */
  async list(): Promise<ImageRecord[]> {
    let text: string;
    try {
      text = await fs.readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new ContainerError("internal", `image index ${this.file} is corrupt`, { cause: err });
    }
    const images = (doc as { images?: unknown }).images;
    if ((doc as { version?: unknown }).version !== VERSION || !Array.isArray(images)) {
      throw new ContainerError("internal", `image index ${this.file} has an unknown format`);
    }
    return (images as ImageRecord[]).slice().sort((a, b) => a.reference.localeCompare(b.reference));
  }

  /** Applies `change` to the records keyed by reference and saves the result. */
  update(change: (records: Map<string, ImageRecord>) => void): Promise<void> {
    return this.mutex.run(async () => {
      const records = new Map((await this.list()).map((r) => [r.reference, r]));
      change(records);
      const images = [...records.values()].sort((a, b) => a.reference.localeCompare(b.reference));
      await writeAtomically(this.file, JSON.stringify({ version: VERSION, images }, null, 2) + "\n");
    });
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const handle = await fs.open(tmp, "wx", 0o644);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}
