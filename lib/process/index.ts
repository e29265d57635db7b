// Processes by pid, for the parts that did not spawn them (or no longer hold
// the child object): the CLI and the apiserver after a restart, the tests.
import { execFile } from "node:child_process";
import { link, readFile, rm, writeFile } from "node:fs/promises";
import { promisify } from "node:util";

/** Whether a pid names a live (or zombie) process; one of another user's counts. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Whether `pid` is a live process whose command line names `program` (a
 * script's path): a pid kept in a file may have been reused since. Read from
 * /proc, else from ps (macOS); where neither answers, a live pid counts.
 */
export async function runsProgram(pid: number, program: string): Promise<boolean> {
  if (!processExists(pid)) return false;
  try {
    return (await readFile(`/proc/${pid}/cmdline`, "utf8")).includes(program);
  } catch {
    // No /proc: ask ps.
  }
  try {
    const { stdout } = await promisify(execFile)("ps", ["-o", "command=", "-p", String(pid)]);
    return stdout.includes(program);
  } catch (err) {
    // ps exits 1 for a pid that has just gone; without ps, trust the pid.
    return (err as NodeJS.ErrnoException).code === "ENOENT" && processExists(pid);
  }
}

/** The pid a pid file holds; undefined when there is no file or no pid in it. */
export async function readPid(path: string): Promise<number | undefined> {
  const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Makes `path` hold this process's pid, as a lock: resolves with undefined
 * once it does, or with the pid of a live process running `program` that
 * holds it already. A file left by a dead process is taken over. The pid is
 * written to a file of our own first and then linked into place, so the
 * link is the atomic step and a reader never sees a half-written file.
 * (Two takers that find the same stale file within the microseconds between
 * one's read and the other's link could both win; no flock in Node closes it.)
 */
export async function takePidFile(path: string, program: string): Promise<number | undefined> {
  const mine = `${path}.${process.pid}`;
  await writeFile(mine, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(mine, path);
        return undefined;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt === 2) throw err;
      }
      const holder = await readPid(path);
      if (holder !== undefined && (await runsProgram(holder, program))) return holder;
      await rm(path, { force: true });
    }
  } finally {
    await rm(mine, { force: true });
  }
}
