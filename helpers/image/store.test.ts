import { execFile, execFileSync } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../lib/errors/index.js";
import { createLogger } from "../../lib/log/index.js";
import { repoRoot } from "../../lib/paths/index.js";
import { createImageStore } from "./index.js";
import { MEDIA } from "./oci.js";
import {
  debugfs,
  e2fsck,
  ext4List,
  LayoutBuilder,
  type Desc,
  makeDockerArchive,
  makeOciArchive,
  makeTar,
  rewriteTar,
} from "./testing.js";
import type { ImageStore } from "./types.js";

const run = promisify(execFile);
const AMD64 = { os: "linux", architecture: "amd64" };
const demoDir = path.join(repoRoot(), "build", "demo");
const demoDocker = path.join(demoDir, "demo-docker.tar");
const demoOci = path.join(demoDir, "demo-oci.tar");

let root: string;
let store: ImageStore;
let logLines: Record<string, unknown>[];

beforeAll(async () => {
  // Runs the builder when the archives are missing; a cache hit costs nothing.
  if (!existsSync(path.join(demoDir, "cache-key"))) {
    await run(process.execPath, [path.join(repoRoot(), "scripts", "build-demo-image.mjs")]);
  }
}, 120_000);

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "image-store-test-"));
  logLines = [];
  const logger = createLogger({ component: "test", level: "debug", write: (l) => logLines.push(JSON.parse(l)) });
  store = createImageStore({ root, logger });
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function expectError(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isContainerError(err), `expected a ContainerError, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  if (message) expect((err as Error).message).toMatch(message);
  expect((err as Error).message).not.toContain("\n");
}

async function leftovers(): Promise<string[]> {
  const ingest = path.join(root, "content", "ingest");
  const snapshots = path.join(root, "snapshots");
  const inIngest = existsSync(ingest) ? await fs.readdir(ingest) : [];
  const tmpSnapshots = existsSync(snapshots) ? (await fs.readdir(snapshots)).filter((n) => n.startsWith("tmp-")) : [];
  return [...inIngest, ...tmpSnapshots];
}

describe("demo image", () => {
  it("loads the docker-archive as demo:latest and resolves it to a checked ext4", async () => {
    const loaded = await store.load(createReadStream(demoDocker));
    expect(loaded.map((r) => r.reference)).toEqual(["demo:latest"]);
    expect(loaded[0]!.platforms).toEqual([AMD64]);
    const list = await store.list();
    expect(list.map((r) => r.reference)).toEqual(["demo:latest"]);

    const resolved = await store.resolve("demo", AMD64);
    expect(resolved.reference).toBe("demo:latest");
    expect(resolved.config).toEqual({
      entrypoint: [],
      cmd: ["sh"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      workingDir: "/",
      user: "",
    });
    await checkDemoRootfs(resolved.rootfsPath);
    expect(await leftovers()).toEqual([]);
  });

  it("loads the oci-archive as demo:latest and unpacks the same tree", async () => {
    const loaded = await store.load(createReadStream(demoOci));
    expect(loaded.map((r) => r.reference)).toEqual(["demo:latest"]);
    const resolved = await store.resolve("docker.io/library/demo:latest", { os: "linux", architecture: "x86_64" });
    await checkDemoRootfs(resolved.rootfsPath);
  });

  it("finds images by name, full digest and digest prefix", async () => {
    const [record] = await store.load(createReadStream(demoOci));
    const digest = record!.digest;
    for (const ref of ["demo", "demo:latest", "docker.io/library/demo", digest, digest.slice(7), digest.slice(7, 19), digest.slice(0, 19), `demo@${digest}`]) {
      expect((await store.resolve(ref, AMD64)).manifestDigest, ref).toBe(digest);
    }
    await expectError(store.resolve("demo:other", AMD64), "notFound");
    await expectError(store.resolve("nothere", AMD64), "notFound");
    await expectError(store.resolve("Demo", AMD64), "invalidArgument");
    await expectError(store.resolve("demo", { os: "linux", architecture: "arm64" }), "notFound", /linux\/arm64/);
  });

  it("unpacks once for concurrent resolves", async () => {
    await store.load(createReadStream(demoDocker));
    const results = await Promise.all([1, 2, 3, 4].map(() => store.resolve("demo:latest", AMD64)));
    expect(new Set(results.map((r) => r.rootfsPath)).size).toBe(1);
    expect(logLines.filter((l) => l.msg === "rootfs unpacked")).toHaveLength(1);
    // And later resolves reuse the file.
    await store.resolve("demo", AMD64);
    expect(logLines.filter((l) => l.msg === "rootfs unpacked")).toHaveLength(1);
  });

  it("rejects a layout whose layer blob is corrupt, and stays usable", async () => {
    const good = await fs.readFile(demoOci);
    const bad = await rewriteTar(good, (_name, data) => {
      if (data.length < 100_000) return data;
      const copy = Buffer.from(data);
      copy[copy.length - 100] = copy[copy.length - 100]! ^ 0xff;
      return copy;
    });
    const input = Readable.from([bad]);
    await expectError(store.load(input), "invalidArgument", /failed verification/);
    expect(input.destroyed).toBe(true);
    expect(await store.list()).toEqual([]);
    expect(await leftovers()).toEqual([]);
    expect(existsSync(path.join(root, "content", "blobs"))).toBe(false);
    await store.load(Readable.from([good]));
    expect((await store.list()).map((r) => r.reference)).toEqual(["demo:latest"]);
  });

  it("rejects a truncated archive", async () => {
    const good = await fs.readFile(demoDocker);
    await expectError(store.load(Readable.from([good.subarray(0, good.length / 2 + 100)])), "invalidArgument", /not a valid tar/);
    expect(await store.list()).toEqual([]);
    expect(await leftovers()).toEqual([]);
  });

  it("passes the input's own errors through", async () => {
    const input = new Readable({
      read() {
        this.destroy(new Error("disk on fire"));
      },
    });
    await expectError(store.load(input), "internal", /disk on fire/);
    expect(await leftovers()).toEqual([]);
  });

  it("rejects a layout with a missing blob", async () => {
    const good = await fs.readFile(demoOci);
    const bad = await rewriteTar(good, (_name, data) => (data.length > 100_000 ? null : data));
    await expectError(store.load(Readable.from([bad])), "invalidArgument", /layer sha256:[0-9a-f]+ is missing/);
    expect(await store.list()).toEqual([]);
  });
});

async function checkDemoRootfs(image: string): Promise<void> {
  await e2fsck(image);
  const binList = await ext4List(image, "/bin");
  expect(binList).toContain("busybox");
  expect(binList).toContain("sh");
  expect(binList.length).toBeGreaterThan(100);
  expect(await ext4List(image, "/")).toEqual(["bin", "etc", "lost+found", "root", "tmp"]);
  expect(await ext4List(image, "/etc")).toEqual(["group", "passwd"]);
  const sh = await debugfs(image, "stat /bin/sh");
  expect(sh).toMatch(/Type: symlink/);
  expect(sh).toMatch(/Fast link dest: "busybox"/);
  const busybox = await debugfs(image, "stat /bin/busybox");
  expect(busybox).toMatch(/Type: regular\s+Mode:\s+0755/);
  expect(busybox).toMatch(/User:\s+0\s+Group:\s+0/);
  expect(await debugfs(image, "stat /tmp")).toMatch(/Type: directory\s+Mode:\s+01777/);
  expect(await debugfs(image, "stat /root")).toMatch(/Mode:\s+0700/);
  expect(await debugfs(image, "cat /etc/passwd")).toMatch(/^root:x:0:0:/);
}

describe("archives built in the test", () => {
  const layer1 = makeTar([
    { name: "etc/", type: "directory" },
    { name: "etc/keep", data: "keep" },
    { name: "etc/gone", data: "gone" },
    { name: "opt/", type: "directory" },
    { name: "opt/old/", type: "directory" },
    { name: "opt/old/file", data: "old" },
    { name: "opt/lower", data: "lower" },
    { name: "usr/bin/tool", data: "#!/bin/sh\n", mode: 0o4755, uid: 1000, gid: 1000 },
  ]);
  const layer2 = makeTar([
    { name: "etc/.wh.gone" },
    { name: "opt/", type: "directory", mode: 0o750 },
    { name: "opt/.wh..wh..opq" },
    { name: "opt/new", data: "new" },
    { name: "usr/bin/tool2", type: "link", linkname: "usr/bin/tool" },
    { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 },
  ]);

  it("applies whiteouts and opaque directories, in a gzip OCI layout with the index first", async () => {
    const built = await makeOciArchive({ layers: [await layer1, await layer2], gzip: true, indexFirst: true, annotations: { "io.containerd.image.name": "example.com/team/app:1.0" } });
    const [record] = await store.load(Readable.from([built.tar]));
    expect(record!.reference).toBe("example.com/team/app:1.0");
    const { rootfsPath } = await store.resolve("example.com/team/app:1.0", AMD64);
    await e2fsck(rootfsPath);
    expect(await ext4List(rootfsPath, "/etc")).toEqual(["keep"]);
    expect(await ext4List(rootfsPath, "/opt")).toEqual(["new"]);
    expect(await debugfs(rootfsPath, "stat /opt")).toMatch(/Mode:\s+0750/);
    const tool = await debugfs(rootfsPath, "stat /usr/bin/tool");
    expect(tool).toMatch(/Mode:\s+04755/);
    expect(tool).toMatch(/User:\s+1000\s+Group:\s+1000/);
    expect(tool).toMatch(/Links: 2/);
    expect(await debugfs(rootfsPath, "stat /dev/null")).toMatch(/Type: character special/);
  });

  it("loads a legacy docker archive with <id>/layer.tar files", async () => {
    const archive = await makeDockerArchive([await layer1], ["docker.io/someone/tool:v2", "tool:latest"]);
    const loaded = await store.load(Readable.from([archive]));
    expect(loaded.map((r) => r.reference).sort()).toEqual(["someone/tool:v2", "tool:latest"]);
    const resolved = await store.resolve("someone/tool:v2", AMD64);
    expect(await ext4List(resolved.rootfsPath, "/opt")).toEqual(["lower", "old"]);
  });

  it("loads an OCI layout whose ref.name is a bare tag untagged", async () => {
    const built = await makeOciArchive({ layers: [await layer1], annotations: { "org.opencontainers.image.ref.name": "latest" } });
    const [record] = await store.load(Readable.from([built.tar]));
    expect(record!.reference).toBe(built.manifestDigest);
    expect((await store.resolve(built.manifestDigest.slice(7, 19), AMD64)).manifestDigest).toBe(built.manifestDigest);
  });

  it("loads a multi-platform index and resolves each platform it holds", async () => {
    const layout = new LayoutBuilder();
    const amd = layout.image({ layers: [await layer1], architecture: "amd64" });
    const arm = layout.image({ layers: [await layer1, await layer2], architecture: "arm64" });
    const riscv = layout.image({ layers: [await layer1], architecture: "riscv64" });
    const attestation: Desc = { ...amd.manifest, platform: { os: "unknown", architecture: "unknown" } };
    const index = layout.index([amd.manifest, arm.manifest, riscv.manifest, attestation]);
    const name = { "io.containerd.image.name": "docker.io/library/multi:1", "org.opencontainers.image.ref.name": "1" };
    // riscv64 is listed by the index but its manifest is not in the archive.
    const [record] = await store.load(Readable.from([await layout.tar([{ ...index, annotations: name }], { omit: [riscv.manifest.digest] })]));
    expect(record).toMatchObject({ reference: "multi:1", digest: index.digest });
    expect(record!.platforms.map((p) => p.architecture)).toEqual(["amd64", "arm64"]);
    const resolvedArm = await store.resolve("multi:1", { os: "linux", architecture: "aarch64" });
    expect(resolvedArm.manifestDigest).toBe(arm.manifest.digest);
    expect(resolvedArm.platform).toEqual({ os: "linux", architecture: "arm64" });
    expect(await ext4List(resolvedArm.rootfsPath, "/opt")).toEqual(["new"]);
    expect((await store.resolve("docker.io/library/multi:1", AMD64)).manifestDigest).toBe(amd.manifest.digest);
    await expectError(store.resolve("multi:1", { os: "linux", architecture: "riscv64" }), "notFound", /not available for linux\/riscv64/);
  });

  it("names a docker v25 layout from the manifest.json beside it", async () => {
    const layout = new LayoutBuilder();
    const { manifest, config } = layout.image({ layers: [await layer1] });
    const dockerManifest = [{ Config: `blobs/sha256/${config.slice(7)}`, RepoTags: ["legacy:2"], Layers: [] }];
    const archive = await layout.tar([{ ...manifest, annotations: { "org.opencontainers.image.ref.name": "2" } }], {
      extra: [{ name: "manifest.json", data: JSON.stringify(dockerManifest) }],
    });
    const [record] = await store.load(Readable.from([archive]));
    expect(record).toMatchObject({ reference: "legacy:2", digest: manifest.digest });
  });

  it("moves a name to the image loaded last", async () => {
    const a = await makeOciArchive({ layers: [await layer1], annotations: { "org.opencontainers.image.ref.name": "app:1" } });
    const b = await makeOciArchive({ layers: [await layer1, await layer2], annotations: { "org.opencontainers.image.ref.name": "app:1" } });
    await store.load(Readable.from([a.tar]));
    await store.load(Readable.from([b.tar]));
    const list = await store.list();
    expect(list.map((r) => [r.reference, r.digest])).toEqual([["app:1", b.manifestDigest]]);
  });

  it("rejects a manifest of the wrong media type", async () => {
    const built = await makeOciArchive({ layers: [await layer1], manifestMediaType: "application/vnd.example+json", annotations: { "org.opencontainers.image.ref.name": "x:1" } });
    await expectError(store.load(Readable.from([built.tar])), "invalidArgument", /media type application\/vnd.example\+json/);
    expect(await store.list()).toEqual([]);
  });

  it("rejects a tar that is neither format, and non-tar input", async () => {
    await expectError(store.load(Readable.from([await makeTar([{ name: "hello.txt", data: "hi" }])])), "invalidArgument", /neither an OCI image layout nor a docker save/);
    await expectError(store.load(Readable.from([Buffer.alloc(4096, 7)])), "invalidArgument", /not a valid tar/);
    expect(await leftovers()).toEqual([]);
  });

  it("rejects an image whose layer does not match its diff_id, when unpacking", async () => {
    const built = await makeOciArchive({ layers: [await layer1], diffIds: [`sha256:${"0".repeat(64)}`], annotations: { "org.opencontainers.image.ref.name": "x:1" } });
    await store.load(Readable.from([built.tar]));
    await expectError(store.resolve("x:1", AMD64), "invalidArgument", /diff_id/);
    expect(await leftovers()).toEqual([]);
  });

  it("rejects hostile layers when resolving, naming the entry, and cleans up", async () => {
    const hostile: [string, Promise<Buffer>, RegExp][] = [
      ["dotdot", makeTar([{ name: "../escape", data: "x" }]), /"\.\.\/escape"/],
      ["absolute", makeTar([{ name: "/etc/../../x", data: "x" }]), /"\/etc\/\.\.\/\.\.\/x"/],
      ["symlink", makeTar([{ name: "evil", type: "symlink", linkname: "/" }, { name: "evil/etc/passwd", data: "x" }]), /symlink "evil"/],
      ["hardlink", makeTar([{ name: "link", type: "link", linkname: "../../etc/passwd" }]), /hard link "link"/],
    ];
    for (const [name, layer, message] of hostile) {
      const built = await makeOciArchive({ layers: [await layer], annotations: { "org.opencontainers.image.ref.name": `${name}:1` } });
      await store.load(Readable.from([built.tar]));
      await expectError(store.resolve(`${name}:1`, AMD64), "invalidArgument", message);
    }
    expect(await leftovers()).toEqual([]);
    expect(existsSync("/escape") || existsSync("/x")).toBe(false);
  });

  it("unpacks zstd layers compressed by the zstd tool, several frames too", async () => {
    const tar = await layer1;
    const zstd = (input: Buffer, level: string): Buffer => execFileSync("zstd", ["-q", "-c", level], { input });
    // Two frames back to back: what a parallel compressor (zstdmt, pzstd) writes.
    const frames = Buffer.concat([zstd(tar.subarray(0, 1024), "-3"), zstd(tar.subarray(1024), "-19")]);
    for (const [name, stored] of [["z1", zstd(tar, "-3")], ["z2", frames]] as const) {
      const built = await makeOciArchive({ layers: [tar], stored: [stored], layerMediaType: MEDIA.ociLayerZstd, annotations: { "org.opencontainers.image.ref.name": `${name}:1` } });
      await store.load(Readable.from([built.tar]));
      const { rootfsPath } = await store.resolve(`${name}:1`, AMD64);
      expect(await ext4List(rootfsPath, "/etc")).toEqual(["gone", "keep"]);
      expect(await debugfs(rootfsPath, "cat /etc/keep")).toBe("keep");
    }
    expect(await leftovers()).toEqual([]);
  });

  it("rejects a corrupt zstd layer, and a decompression bomb past its expansion cap", async () => {
    const tar = await layer1;
    const zstd = execFileSync("zstd", ["-q", "-c"], { input: tar });
    const corrupt = Buffer.concat([zstd.subarray(0, 20), Buffer.alloc(40, 0xff), zstd.subarray(60)]);
    const bad = await makeOciArchive({ layers: [tar], stored: [corrupt], layerMediaType: MEDIA.ociLayerZstd, annotations: { "org.opencontainers.image.ref.name": "bad:1" } });
    await store.load(Readable.from([bad.tar]));
    await expectError(store.resolve("bad:1", AMD64), "invalidArgument", /^layer 1\/1 \([0-9a-f]{12}\) is not valid zstd/);

    // 8 MiB of zeros: 8 KiB of gzip, 256 bytes of zstd; the cap is 64 × the declared size, at least 1 MiB.
    const capped = createImageStore({ root, logger: createLogger({ component: "test", write: () => undefined }), maxLayerExpansion: { ratio: 64, floor: 1 << 20 } });
    const bomb = await makeTar([{ name: "zeros", data: Buffer.alloc(8 << 20) }]);
    for (const [name, stored, mediaType] of [
      ["gz", gzipSync(bomb), MEDIA.ociLayerGzip],
      ["zst", execFileSync("zstd", ["-q", "-c", "-19"], { input: bomb }), MEDIA.ociLayerZstd],
    ] as const) {
      const built = await makeOciArchive({ layers: [bomb], stored: [stored], layerMediaType: mediaType, annotations: { "org.opencontainers.image.ref.name": `${name}:1` } });
      await capped.load(Readable.from([built.tar]));
      await expectError(capped.resolve(`${name}:1`, AMD64), "invalidArgument", new RegExp(`^layer 1/1 \\([0-9a-f]{12}\\) inflates to more than ${1 << 20} bytes from ${stored.length}: refusing a decompression bomb$`));
    }
    expect(await leftovers()).toEqual([]);
  });
});
