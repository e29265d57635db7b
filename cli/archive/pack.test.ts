import { execFile } from "node:child_process";
import { chmod, link, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { expectContainerRejection } from "../../lib/errors/testing.js";
import { copiesContents, packPath } from "./index.js";
import { list } from "./testing.js";

const run = promisify(execFile);

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), "archive-pack-"));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const summary = (entries: Awaited<ReturnType<typeof list>>): string[] =>
  entries.map((e) => `${e.name} ${e.type}${e.linkname ? ` -> ${e.linkname}` : ""}`);

describe("packPath", () => {
  it("archives a tree under its base name, in name order, keeping links and modes and leaving sockets out", async () => {
    const d = join(tmp, "d");
    await mkdir(join(d, "nested", "deep"), { recursive: true });
    await mkdir(join(d, "empty"));
    await writeFile(join(d, "a.txt"), "hello");
    await chmod(join(d, "a.txt"), 0o640);
    await link(join(d, "a.txt"), join(d, "hard"));
    await symlink("a.txt", join(d, "link"));
    await writeFile(join(d, "nested", "deep", "b.bin"), "b");
    await chmod(join(d, "nested", "deep", "b.bin"), 0o755);
    await run("mkfifo", [join(d, "pipe")]);
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(join(d, "sock"), resolve));
    try {
      const entries = await list(packPath(d));
      expect(summary(entries)).toEqual([
        "d/ directory",
        "d/a.txt file",
        "d/empty/ directory",
        "d/hard link -> d/a.txt",
        "d/link symlink -> a.txt",
        "d/nested/ directory",
        "d/nested/deep/ directory",
        "d/nested/deep/b.bin file",
        "d/pipe fifo",
      ]);
      expect(entries.find((e) => e.name === "d/a.txt")).toMatchObject({ mode: 0o640, data: "hello" });
      expect(entries.find((e) => e.name === "d/nested/deep/b.bin")).toMatchObject({ mode: 0o755, data: "b" });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("archives a directory's contents for dir/. : './' first, then names with no prefix", async () => {
    const d = join(tmp, "d");
    await mkdir(join(d, "sub"), { recursive: true });
    await writeFile(join(d, "sub", "x"), "x");
    expect(summary(await list(packPath(`${d}/.`)))).toEqual(["./ directory", "sub/ directory", "sub/x file"]);
  });

  it("archives a file, and a symlink as the link itself, under the base name", async () => {
    await writeFile(join(tmp, "f"), "data");
    await symlink("f", join(tmp, "l"));
    expect(summary(await list(packPath(join(tmp, "f"))))).toEqual(["f file"]);
    expect(summary(await list(packPath(join(tmp, "l"))))).toEqual(["l symlink -> f"]);
  });

  it.runIf(process.platform === "linux")("archives a device node as one, with its numbers", async () => {
    expect(await list(packPath("/dev/null"))).toMatchObject([{ name: "null", type: "character-device", devmajor: 1, devminor: 3 }]);
  });

  it("fails on the stream with notFound for a missing source, invalidArgument for file/.", async () => {
    await writeFile(join(tmp, "f"), "data");
    await expectContainerRejection(list(packPath(join(tmp, "missing"))), "notFound", /no such file or directory: .*missing/);
    await expectContainerRejection(list(packPath(`${tmp}/f/.`)), "invalidArgument", /not a directory/);
  });

  it("refuses a file name that is not UTF-8 rather than lose it", async () => {
    await mkdir(join(tmp, "d"));
    await writeFile(Buffer.from(`${tmp}/d/caf\xe9`, "latin1"), "x");
    await expectContainerRejection(list(packPath(join(tmp, "d"))), "unsupported", /not UTF-8/);
  });
});

describe("copiesContents", () => {
  it("is Docker's reading of a source path", () => {
    expect(["dir/.", "dir/./", ".", "/"].map(copiesContents)).toEqual([true, true, true, true]);
    expect(["dir", "dir/", "./dir", "..", "a.b"].map(copiesContents)).toEqual([false, false, false, false, false]);
  });
});
