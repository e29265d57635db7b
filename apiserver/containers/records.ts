// The apiserver's record of one container, persisted atomically as
// <data dir>/containers/<id>/container.json. The record is the truth the CLI
// sees; the runtime helper's exit.json is folded in when the process ends.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeJsonAtomic } from "../../lib/fs/index.js";
import type { Logger } from "../../lib/log/index.js";
import type { Isolation } from "../../helpers/runtime/config.js";

export type ContainerState = "created" | "running" | "stopped";

export interface ContainerRecord {
  id: string;
  name: string;
  /** The reference as resolved, e.g. "demo:latest". */
  image: string;
  imageDigest: string;
  args: string[];
  env: string[];
  cwd: string;
  /** Docker's -u form the process runs as ("" or absent: root). */
  user?: string;
  interactive: boolean;
  /** A terminal (-t); absent in records older than the flag. */
  tty?: boolean;
  autoRemove: boolean;
  cpus: number;
  memoryMiB: number;
  labels: Record<string, string>;
  readOnly: boolean;
  /** Absent in records older than the isolation flags. */
  isolation?: Isolation;
  createdAt: number;
  state: ContainerState;
  exitCode?: number;
  /** The runtime helper owning the VM while one runs. */
  helperPid?: number;
}

export const RECORD_FILE = "container.json";

export function containersDir(dataDir: string): string {
  return join(dataDir, "containers");
}

export function bundleDir(dataDir: string, id: string): string {
  return join(containersDir(dataDir), id);
}

export async function saveRecord(dataDir: string, record: ContainerRecord): Promise<void> {
  await writeJsonAtomic(join(bundleDir(dataDir, record.id), RECORD_FILE), record);
}

/** Every readable record; a directory without one (a create that died half-way) is reported for removal. */
export async function loadRecords(dataDir: string, logger: Logger): Promise<{ records: ContainerRecord[]; orphans: string[] }> {
  const records: ContainerRecord[] = [];
  const orphans: string[] = [];
  let entries: string[];
  try {
    entries = await readdir(containersDir(dataDir));
  } catch {
    return { records, orphans };
  }
  for (const id of entries) {
    try {
      records.push(JSON.parse(await readFile(join(bundleDir(dataDir, id), RECORD_FILE), "utf8")) as ContainerRecord);
    } catch (err) {
      logger.warn("container directory without a readable record", { id, err });
      orphans.push(id);
    }
  }
  return { records, orphans };
}
