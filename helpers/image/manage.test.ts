// tag, remove, inspect, prune and usage through the store's public entry
// point, on small synthetic images; and the lock that keeps garbage
// collection apart from everything else.
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../lib/errors/index.js";
import { createLogger } from "../../lib/log/index.js";
import { GcLock } from "./content/index.js";
import { createImageStore } from "./index.js";
import { hostPlatform } from "./oci.js";
import { LayoutBuilder, makeTar } from "./testing.js";
import type { ImageStore, ImageUsers } from "./types.js";

const HOST = hostPlatform();
const NONE: ImageUsers = new Map();

let root: string;
let store: ImageStore;

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "image-manage-test-"));
  store = createImageStore({ root, logger: createLogger({ component: "test", write: () => undefined }) });
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function error(promise: Promise<unknown>): Promise<{ code: string; message: string; hint?: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isContainerError(err), `expected a ContainerError, got ${String(err)}`).toBe(true);
  expect((err as Error).message).not.toContain("\n");
  return err as { code: string; message: string; hint?: string };
}

async function blobs(): Promise<string[]> {
  const dir = path.join(root, "content", "blobs", "sha256");
  return existsSync(dir) ? (await fs.readdir(dir)).sort() : [];
}

/** Loads a one-layer image for the host's architecture under `name`; `content` makes its layer distinct. */
async function loadImage(name: string, content: string): Promise<{ digest: string; layer: string }> {
  const layout = new LayoutBuilder();
  const { manifest } = layout.image({ layers: [await makeTar([{ name: "f", data: content }])], architecture: HOST.architecture });
  const { platform: _p, ...entry } = manifest;
  const [record] = await store.load(Readable.from([await layout.tar([{ ...entry, annotations: { "io.containerd.image.name": name } }])]));
  const layer = [...layout.blobs.keys()][0]!;
  return { digest: record!.digest, layer };
}

describe("tag", () => {
  it("names an image again, and moves a name from another image", async () => {
    const a = await loadImage("a:1", "a");
    const b = await loadImage("b:1", "b");
    expect(await store.tag("a:1", "docker.io/library/c")).toMatchObject({ reference: "c:latest", digest: a.digest });
    expect(await store.tag(b.digest.slice(0, 19), "c")).toMatchObject({ reference: "c:latest", digest: b.digest });
    expect((await store.list()).map((r) => [r.reference, r.digest])).toEqual([
      ["a:1", a.digest],
      ["b:1", b.digest],
      ["c:latest", b.digest],
    ]);
  });

  it("refuses a missing source, a digest target and a bad name, changing nothing", async () => {
    const a = await loadImage("a:1", "a");
    expect(await error(store.tag("nope", "x"))).toMatchObject({ code: "notFound" });
    expect(await error(store.tag("a:1", `x@${a.digest}`))).toMatchObject({ code: "invalidArgument" });
    expect(await error(store.tag("a:1", "Bad"))).toMatchObject({ code: "invalidArgument" });
    expect((await store.list()).map((r) => r.reference)).toEqual(["a:1"]);
  });
});

describe("remove", () => {
  it("untags a name the image has others of, and frees content with the last one", async () => {
    const a = await loadImage("a:1", "a");
    await store.tag("a:1", "a:2");
    const rootfs = (await store.resolve("a:2", HOST)).rootfsPath;
    const stored = await blobs();
    expect(await store.remove(["a:1"], { users: NONE })).toEqual({ untagged: ["a:1"], deleted: [], reclaimedBytes: 0 });
    expect(await blobs()).toEqual(stored);
    const removed = await store.remove(["a:2"], { users: NONE });
    expect(removed).toMatchObject({ untagged: ["a:2"], deleted: [a.digest] });
    expect(removed.reclaimedBytes).toBeGreaterThan(0);
    expect(await blobs()).toEqual([]);
    expect(existsSync(rootfs)).toBe(false);
    expect(await store.list()).toEqual([]);
  });

  it("keeps what other images share", async () => {
    const a = await loadImage("a:1", "same");
    const b = await loadImage("b:1", "same");
    expect(a.layer).toBe(b.layer);
    await store.remove(["a:1"], { users: NONE });
    expect(await blobs()).toContain(a.layer.slice(7));
    expect((await store.inspect("b:1")).layers[0]!.digest).toBe(b.layer);
  });

  it("refuses the last name of an image a container uses; -f leaves it untagged until the container goes", async () => {
    const a = await loadImage("a:1", "a");
    const rootfs = (await store.resolve("a:1", HOST)).rootfsPath;
    const users: ImageUsers = new Map([[a.digest, ["web"]]]);
    const refused = await error(store.remove(["a:1"], { users }));
    expect(refused).toMatchObject({ code: "invalidState", message: "image a:1 is in use by container web" });
    expect(refused.hint).toMatch(/-f/);
    expect((await store.list()).map((r) => r.reference)).toEqual(["a:1"]);

    expect(await store.remove(["a:1"], { force: true, users })).toEqual({ untagged: ["a:1"], deleted: [], reclaimedBytes: 0 });
    expect((await store.list()).map((r) => r.reference)).toEqual([a.digest]);
    expect(existsSync(rootfs)).toBe(true);
    // Untagged and in use: nothing removes it, -f neither, prune neither.
    expect(await error(store.remove([a.digest], { force: true, users }))).toMatchObject({ code: "invalidState" });
    expect((await store.prune({ all: true, users })).removed).toEqual([]);
    expect(existsSync(rootfs)).toBe(true);
    // The container is gone: a dangling prune takes it.
    expect((await store.prune({ users: NONE })).removed).toEqual([a.digest]);
    expect(await blobs()).toEqual([]);
    expect(existsSync(rootfs)).toBe(false);
  });

  it("by digest: refuses an image with several names without -f, removes them all with it", async () => {
    const a = await loadImage("a:1", "a");
    await store.tag("a:1", "a:2");
    const refused = await error(store.remove([a.digest.slice(7, 19)], { users: NONE }));
    expect(refused).toMatchObject({ code: "invalidState", message: `image ${a.digest.slice(7, 19)} is named a:1, a:2` });
    expect(await store.remove([a.digest], { force: true, users: NONE })).toMatchObject({ untagged: ["a:1", "a:2"], deleted: [a.digest] });
    expect(await store.list()).toEqual([]);
  });

  it("is all or nothing", async () => {
    await loadImage("a:1", "a");
    await loadImage("b:1", "b");
    const stored = await blobs();
    expect(await error(store.remove(["a:1", "nope:1"], { users: NONE }))).toMatchObject({ code: "notFound", message: "image nope:1 not found" });
    const users: ImageUsers = new Map([[(await store.inspect("b:1")).manifestDigest, ["c1"]]]);
    expect(await error(store.remove(["a:1", "b:1"], { users }))).toMatchObject({ code: "invalidState" });
    expect((await store.list()).map((r) => r.reference)).toEqual(["a:1", "b:1"]);
    expect(await blobs()).toEqual(stored);
    expect(await error(store.remove([], { users: NONE }))).toMatchObject({ code: "invalidArgument" });
  });
});

describe("prune", () => {
  it("takes untagged images by default, every unused one with all, and what interrupted work left", async () => {
    const a = await loadImage("a:1", "a");
    const b = await loadImage("b:1", "b");
    const c = await loadImage("c:1", "c");
    await store.remove(["a:1"], { force: true, users: new Map([[a.digest, ["x"]]]) }); // now untagged
    await fs.mkdir(path.join(root, "content", "ingest", "in-stale"), { recursive: true });
    await fs.mkdir(path.join(root, "snapshots", "tmp-stale"), { recursive: true });
    await fs.writeFile(path.join(root, "content", "blobs", "sha256", "f".repeat(64)), "orphan");

    const dangling = await store.prune({ users: NONE });
    expect(dangling).toMatchObject({ removed: [a.digest], blobs: 4 });
    expect(existsSync(path.join(root, "content", "ingest"))).toBe(false);
    expect(existsSync(path.join(root, "snapshots", "tmp-stale"))).toBe(false);

    const users: ImageUsers = new Map([[b.digest, ["web"]]]);
    const all = await store.prune({ all: true, users });
    expect(all.removed).toEqual(["c:1"]);
    expect(all.blobs).toBe(3);
    expect((await store.list()).map((r) => r.digest)).toEqual([b.digest]);
    expect(await blobs()).not.toContain(c.layer.slice(7));
  });

  it("keeps every platform of an index a container uses one platform of", async () => {
    const layout = new LayoutBuilder();
    const amd = layout.image({ layers: [await makeTar([{ name: "a" }])], architecture: "amd64" });
    const arm = layout.image({ layers: [await makeTar([{ name: "b" }])], architecture: "arm64" });
    const index = layout.index([amd.manifest, arm.manifest]);
    await store.load(Readable.from([await layout.tar([{ ...index, annotations: { "io.containerd.image.name": "multi:1" } }])]));
    const before = await blobs();
    expect(await store.prune({ all: true, users: new Map([[arm.manifest.digest, ["c"]]]) })).toMatchObject({ removed: [], blobs: 0 });
    expect(await blobs()).toEqual(before);
    expect((await store.usage(new Map([[arm.manifest.digest, ["c"]]]))).images).toMatchObject({ total: 1, active: 1, reclaimable: 0 });
  });
});

describe("inspect and usage", () => {
  it("shows the host platform's manifest, config and layers", async () => {
    const layout = new LayoutBuilder();
    const other = HOST.architecture === "arm64" ? "amd64" : "arm64";
    const foreign = layout.image({ layers: [await makeTar([{ name: "x" }])], architecture: other });
    const native = layout.image({ layers: [await makeTar([{ name: "y" }]), await makeTar([{ name: "z" }])], architecture: HOST.architecture, gzip: true });
    const index = layout.index([foreign.manifest, native.manifest]);
    await store.load(Readable.from([await layout.tar([{ ...index, annotations: { "io.containerd.image.name": "ghcr.io/o/multi:2" } }])]));
    const detail = await store.inspect("ghcr.io/o/multi:2");
    expect(detail).toMatchObject({
      reference: "ghcr.io/o/multi:2",
      digest: index.digest,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifestDigest: native.manifest.digest,
      platform: { os: "linux", architecture: HOST.architecture },
      configDigest: native.config,
      config: { cmd: ["sh"], env: ["PATH=/bin"], entrypoint: [], workingDir: "", user: "" },
    });
    expect(detail.platforms.map((p) => p.architecture)).toEqual([other, HOST.architecture]);
    expect(detail.layers.map((l) => l.mediaType)).toEqual(["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+gzip"]);
    expect(await error(store.inspect("ghcr.io/o/multi:3"))).toMatchObject({ code: "notFound" });
  });

  it("counts images, snapshots and what prune -a would free", async () => {
    const a = await loadImage("a:1", "a");
    await loadImage("b:1", "b");
    await store.tag("a:1", "a:2");
    await store.resolve("a:1", HOST);
    await store.resolve("b:1", HOST);
    const usage = await store.usage(new Map([[a.digest, ["web", "db"]]]));
    const blobBytes = (await Promise.all((await blobs()).map(async (b) => (await fs.stat(path.join(root, "content", "blobs", "sha256", b))).size))).reduce((x, y) => x + y, 0);
    expect(usage.images).toMatchObject({ total: 2, active: 1, bytes: blobBytes });
    expect(usage.images.reclaimable).toBeGreaterThan(0);
    expect(usage.images.reclaimable).toBeLessThan(blobBytes);
    expect(usage.snapshots).toMatchObject({ total: 2, active: 1 });
    expect(usage.snapshots.reclaimable * 2).toBe(usage.snapshots.bytes);
    expect(usage.perImage.find((i) => i.digest === a.digest)).toMatchObject({ references: ["a:1", "a:2"], containers: 2 });
  });
});

describe("GcLock", () => {
  it("runs a collection alone: after the uses before it, before the uses after it", async () => {
    const lock = new GcLock();
    const events: string[] = [];
    let finish!: () => void;
    const first = lock.use(() => new Promise<void>((resolve) => (finish = resolve)).then(() => void events.push("use 1 done")));
    const collection = lock.collect(async () => void events.push("collect"));
    // A use while the collection only waits does not wait (uses may nest).
    await lock.use(async () => void events.push("nested use"));
    finish();
    await first;
    await collection;
    await lock.use(async () => void events.push("use 2"));
    expect(events).toEqual(["nested use", "use 1 done", "collect", "use 2"]);
    expect(await lock.tryCollect(async () => "ran")).toBe("ran");
    const release = await lock.hold();
    expect(await lock.tryCollect(async () => "ran")).toBeUndefined();
    release();
    release(); // twice is harmless
    expect(await lock.tryCollect(async () => "ran")).toBe("ran");
  });
});
