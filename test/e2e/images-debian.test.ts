// A real distribution image end to end: Debian bookworm from `debootstrap
// --variant=minbase` (bench/debian-image.ts: built on first use, ~2 min,
// then cached under ~/.cache/container-build/ keyed by its inputs), made an OCI image by
// umoci, pushed by skopeo to Debian's docker-registry, pulled and run by us,
// pushed back under a new tag and pulled by digest. Then the ext4 we built
// for it, and for the two demo images, is checked against the layers it came
// from: `e2fsck -fn` clean, and every entry's type, mode, owner, size and
// (fast) symlink target as debugfs reads them equal to the flattened layer
// tars'. One VM boot.
import { execFile } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cleanup } from "../../bench/cleanup.js";
import { ensureDebianImage } from "../../bench/debian-image.js";
import { createLogger } from "../../lib/log/index.js";
import { createImageStore } from "../../helpers/image/index.js";
import { ROOT, createTestEnv, type TestEnv } from "../support/env.js";
import { startRegistry, type Registry } from "../support/registry.js";

const run = promisify(execFile);
const DEMOS = [
  { archive: join(ROOT, "build", "demo", "demo-oci.tar"), name: "demo:latest", architecture: "amd64" },
  { archive: join(ROOT, "build", "demo-arm64", "demo-arm64-oci.tar"), name: "demo-arm64:latest", architecture: "arm64" },
];
const canBuild = process.getuid?.() === 0 && existsSync("/usr/sbin/debootstrap");

interface Entry {
  type: "file" | "directory" | "symlink" | "character-device" | "block-device" | "fifo";
  /** Permission bits with setuid, setgid and sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files: content bytes; symlinks: target bytes. */
  size: number;
  target?: string;
}

/** The blobs of an OCI archive (skopeo's oci-archive), by digest, and its first manifest's layers. */
async function readOciArchive(file: string): Promise<{ layers: { mediaType: string; bytes: Buffer }[] }> {
  const files = new Map<string, Buffer>();
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      files.set(entry.header.name.replace(/^\.\//, ""), Buffer.concat(chunks));
    }
  })();
  await pipeline(createReadStream(file), extract);
  await done;
  const blob = (digest: string): Buffer => files.get(`blobs/sha256/${digest.slice(7)}`)!;
  const index = JSON.parse(files.get("index.json")!.toString()) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(blob(index.manifests[0]!.digest).toString()) as { layers: { mediaType: string; digest: string }[] };
  return { layers: manifest.layers.map((l) => ({ mediaType: l.mediaType, bytes: blob(l.digest) })) };
}

/** The tree the layers make, applied in order with whiteouts and hard links resolved, as path → entry (no leading /). */
async function flatten(layers: { mediaType: string; bytes: Buffer }[]): Promise<Map<string, Entry>> {
  const tree = new Map<string, Entry>();
  const drop = (prefix: string): void => {
    for (const key of [...tree.keys()]) if (key.startsWith(prefix)) tree.delete(key);
  };
  for (const layer of layers) {
    const extract = tar.extract();
    const source = Readable.from([layer.bytes]);
    const reading = (async () => {
      for await (const entry of extract) {
        const h = entry.header;
        entry.resume();
        const name = h.name.replace(/^(\.\/|\/)+/, "").replace(/\/+$/, "");
        if (name === "" || name === ".") continue;
        const base = name.slice(name.lastIndexOf("/") + 1);
        const dir = name.includes("/") ? name.slice(0, name.lastIndexOf("/")) : "";
        if (base === ".wh..wh..opq") {
          drop(`${dir}/`);
          continue;
        }
        if (base.startsWith(".wh.")) {
          const victim = dir ? `${dir}/${base.slice(4)}` : base.slice(4);
          tree.delete(victim);
          drop(`${victim}/`);
          continue;
        }
        if (h.type === "link") {
          tree.set(name, { ...tree.get(h.linkname!.replace(/^(\.\/|\/)+/, ""))! });
          continue;
        }
        const type = h.type as Entry["type"];
        const target = type === "symlink" ? h.linkname! : undefined;
        const size = type === "file" ? h.size! : target !== undefined ? Buffer.byteLength(target) : 0;
        if (tree.get(name)?.type !== "directory" || type !== "directory") drop(`${name}/`);
        tree.set(name, { type, mode: h.mode! & 0o7777, uid: h.uid!, gid: h.gid!, size, ...(target !== undefined ? { target } : {}) });
      }
    })();
    await (layer.mediaType.endsWith("gzip") ? pipeline(source, createGunzip(), extract) : pipeline(source, extract));
    await reading;
  }
  return tree;
}

/** The file type in the top bits of an ext4 mode (mode >> 12). */
const TYPES: Record<number, Entry["type"]> = { 1: "fifo", 2: "character-device", 4: "directory", 6: "block-device", 8: "file", 10: "symlink" };

/** Every entry of an ext4 image as debugfs reads it: `ls -p` of each directory, `stat` of each symlink; one debugfs run for each. */
async function readExt4(image: string, scratch: string): Promise<Map<string, Entry>> {
  const debugfs = async (commands: string[]): Promise<string[]> => {
    const file = join(scratch, "cmds");
    await writeFile(file, commands.join("\n") + "\n");
    const { stdout } = await run("debugfs", ["-f", file, image], { maxBuffer: 256 << 20 });
    return stdout.split(/^debugfs: .*$/m).slice(1);
  };
  const tree = new Map<string, Entry>();
  let dirs = [""];
  while (dirs.length > 0) {
    const outputs = await debugfs(dirs.map((d) => `ls -p "/${d}"`));
    const next: string[] = [];
    dirs.forEach((dir, i) => {
      for (const line of outputs[i]!.split("\n")) {
        // /inode/mode/uid/gid/name/size/
        const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/([^/]*)\/(\d*)\/$/.exec(line);
        if (!m || m[5] === "" || m[5] === "." || m[5] === "..") continue;
        const mode = parseInt(m[2]!, 8);
        const type = TYPES[mode >> 12]!;
        const name = dir ? `${dir}/${m[5]}` : m[5]!;
        tree.set(name, { type, mode: mode & 0o7777, uid: Number(m[3]), gid: Number(m[4]), size: type === "file" || type === "symlink" ? Number(m[6]) : 0 });
        if (type === "directory") next.push(name);
      }
    });
    dirs = next;
  }
  const links = [...tree].filter(([, e]) => e.type === "symlink").map(([p]) => p);
  const stats = links.length > 0 ? await debugfs(links.map((p) => `stat "/${p}"`)) : [];
  links.forEach((p, i) => {
    const fast = /Fast link dest: "(.*)"/.exec(stats[i]!)?.[1];
    if (fast !== undefined) tree.get(p)!.target = fast;
  });
  return tree;
}

/**
 * Checks our ext4 against the flattened layers: e2fsck clean, the same
 * entries (lost+found aside) with equal metadata. Returns how many entries,
 * and how many symlink targets debugfs showed.
 */
async function expectSameTree(image: string, layers: { mediaType: string; bytes: Buffer }[], scratch: string): Promise<{ entries: number; targets: number }> {
  await run("e2fsck", ["-fn", image]);
  const want = await flatten(layers);
  const have = await readExt4(image, scratch);
  have.delete("lost+found");
  const targets = [...have.values()].filter((e) => e.target !== undefined).length;
  // Directories the layers imply without an entry of their own are made by the writer.
  for (const p of have.keys()) if (!want.has(p) && have.get(p)!.type === "directory" && [...want.keys()].some((w) => w.startsWith(`${p}/`))) have.delete(p);
  for (const [p, e] of have) {
    // Only fast symlinks show their target in `stat`; slow ones are checked by length.
    if (e.type === "symlink" && e.target === undefined) have.set(p, { ...e, target: want.get(p)?.target ?? "" });
  }
  expect([...have.keys()].sort()).toEqual([...want.keys()].sort());
  const differing = [...want].filter(([p, w]) => JSON.stringify(have.get(p)) !== JSON.stringify(w)).map(([p, w]) => `${p}: want ${JSON.stringify(w)}, have ${JSON.stringify(have.get(p))}`);
  expect(differing.slice(0, 10)).toEqual([]);
  return { entries: want.size, targets };
}

let t: TestEnv | undefined;
let registry: Registry | undefined;
let scratch: string;
let debianArchive = "";
let manifestDigest = "";

describe.skipIf(!canBuild)(`a Debian minbase image${canBuild ? "" : " (skipped: building it needs root and debootstrap)"}`, () => {
  beforeAll(async () => {
    scratch = await mkdtemp("/tmp/images-debian-");
    const cleanup = new Cleanup();
    try {
      debianArchive = (await ensureDebianImage((msg) => process.stderr.write(`images-debian: ${msg}\n`), cleanup)).archive;
    } finally {
      await cleanup.run();
    }
    registry = await startRegistry();
    await registry.push(`oci-archive:${debianArchive}`, "debian:bookworm");
    t = await createTestEnv({ loadDemo: false });
  }, 900_000);

  afterAll(async () => {
    await t?.close();
    await registry?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  let digest = "";

  it("is pulled and runs a command", async () => {
    const ref = `${registry!.host}/debian:bookworm`;
    const pulled = await t!.cli(["image", "pull", ref]);
    expect(pulled.code, pulled.stderr).toBe(0);
    digest = /Digest: (sha256:[0-9a-f]{64})/.exec(pulled.stdout)![1]!;
    const r = await t!.cli(["run", "--rm", ref, "cat", "/etc/debian_version"], { timeoutMs: 300_000 });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^12\.\d+\n$/);
    manifestDigest = (JSON.parse((await t!.cli(["image", "inspect", ref])).stdout) as { manifestDigest: string }[])[0]!.manifestDigest;
  });

  it("unpacked to an ext4 whose every entry matches the layer's", async () => {
    const image = join(t!.dir, "data", "snapshots", manifestDigest.slice(7), "rootfs.ext4");
    const { entries, targets } = await expectSameTree(image, (await readOciArchive(debianArchive)).layers, scratch);
    expect(entries).toBeGreaterThan(3000);
    expect(targets).toBeGreaterThan(100);
  });

  it("is pushed back under a new tag, and pulled from there by digest", async () => {
    const ref = `${registry!.host}/debian:bookworm`;
    const copy = `${registry!.host}/mirror/debian:copy`;
    expect((await t!.cli(["image", "tag", ref, copy])).code).toBe(0);
    const pushed = await t!.cli(["image", "push", copy]);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toBe(`Pushed image: ${copy}\nDigest: ${digest}\n`);
    // Gone from the store, then back from the new repository by digest: every blob downloaded again.
    expect((await t!.cli(["image", "rm", ref, copy])).code).toBe(0);
    const again = await t!.cli(["image", "pull", `${registry!.host}/mirror/debian@${digest}`]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/: done /);
    expect(again.stderr).not.toMatch(/already present/);
  });
});

describe("the demo images' ext4", () => {
  for (const demo of DEMOS) {
    it.skipIf(!existsSync(demo.archive))(`${demo.name} (${demo.architecture}) matches its layers`, async () => {
      const root = await mkdtemp("/tmp/images-demo-ext4-");
      try {
        const store = createImageStore({ root, logger: createLogger({ component: "test", write: () => undefined }) });
        await store.load(createReadStream(demo.archive));
        const { rootfsPath } = await store.resolve(demo.name, { os: "linux", architecture: demo.architecture });
        const { entries, targets } = await expectSameTree(rootfsPath, (await readOciArchive(demo.archive)).layers, root);
        // busybox, its applets' links, /etc, /root, /tmp.
        expect(entries).toBeGreaterThan(250);
        expect(targets).toBeGreaterThan(250);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  }
});
