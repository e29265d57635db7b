import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { processExists, runsProgram, takePidFile } from "./index.js";

/** A live process whose command line names `marker`. */
async function sleeper(marker: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["-e", `/* ${marker} */ setTimeout(() => {}, 60000)`], { stdio: "ignore" });
  await once(child, "spawn");
  return child;
}

/** A pid no process has: one that has just exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await once(child, "exit");
  return child.pid!;
}

let dir: string;
const children: ChildProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "pidfile-"));
});

afterEach(async () => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("runsProgram", () => {
  it("tells a live process running the program from a dead pid and from one running something else", async () => {
    const child = await sleeper("fake/apiserver/main.js");
    children.push(child);
    expect(await runsProgram(child.pid!, "apiserver/main.js")).toBe(true);
    expect(await runsProgram(child.pid!, "helpers/runtime/main.js")).toBe(false);
    const dead = await deadPid();
    expect(processExists(dead)).toBe(false);
    expect(await runsProgram(dead, "apiserver/main.js")).toBe(false);
  });
});

describe("takePidFile", () => {
  it("takes a free file, holding this process's pid, and leaves no file of its own beside it", async () => {
    const path = join(dir, "apiserver.pid");
    expect(await takePidFile(path, "apiserver/main.js")).toBeUndefined();
    expect(await readFile(path, "utf8")).toBe(`${process.pid}\n`);
    expect(await readdir(dir)).toEqual(["apiserver.pid"]);
  });

  it("answers with the holder's pid while a live process running the program holds it, and leaves the file alone", async () => {
    const holder = await sleeper("fake/apiserver/main.js");
    children.push(holder);
    const path = join(dir, "apiserver.pid");
    await writeFile(path, `${holder.pid}\n`);
    expect(await takePidFile(path, "apiserver/main.js")).toBe(holder.pid);
    expect(await readFile(path, "utf8")).toBe(`${holder.pid}\n`);
    expect(await readdir(dir)).toEqual(["apiserver.pid"]);
  });

  it("takes over a file left by a dead process, by a reused pid, or holding junk", async () => {
    const other = await sleeper("something else");
    children.push(other);
    for (const left of [`${await deadPid()}\n`, `${other.pid}\n`, "junk", ""]) {
      const path = join(dir, "apiserver.pid");
      await writeFile(path, left);
      expect(await takePidFile(path, "apiserver/main.js"), JSON.stringify(left)).toBeUndefined();
      expect(await readFile(path, "utf8")).toBe(`${process.pid}\n`);
    }
  });
});
