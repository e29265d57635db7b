// Platform selection, and pulls through the image store from an in-process
// registry that speaks the distribution API with token auth and redirects.
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { createLogger } from "../../../lib/log/index.js";
import { createImageStore } from "../index.js";
import { MEDIA, hostPlatform, parsePlatformString, type Descriptor, type Index } from "../oci.js";
import { LayoutBuilder, makeTar, type Desc } from "../testing.js";
import type { ImageStore, Platform, PullProgress } from "../types.js";
import { chooseManifest } from "./pull.js";

const desc = (digest: string, platform?: Platform, extra: Partial<Descriptor> = {}): Descriptor => ({
  mediaType: MEDIA.ociManifest,
  digest: `sha256:${digest.repeat(64)}`,
  size: 1,
  ...(platform ? { platform } : {}),
  ...extra,
});

describe("platforms", () => {
  const index = (manifests: Descriptor[]): Index => ({ schemaVersion: 2, manifests });

  it("picks the first matching runnable image, variants and kernel arch names included", () => {
    const amd = desc("a", { os: "linux", architecture: "amd64" });
    const armV7 = desc("b", { os: "linux", architecture: "arm", variant: "v7" });
    const arm64 = desc("c", { os: "linux", architecture: "arm64", variant: "v8" });
    const attestation = desc("d", { os: "unknown", architecture: "unknown" });
    const i = index([attestation, armV7, arm64, amd]);
    expect(chooseManifest(i, { os: "linux", architecture: "amd64" })).toBe(amd);
    expect(chooseManifest(i, { os: "linux", architecture: "x86_64" })).toBe(amd);
    expect(chooseManifest(i, { os: "linux", architecture: "arm64" })).toBe(arm64);
    expect(chooseManifest(i, parsePlatformString("linux/arm/v7"))).toBe(armV7);
    expect(chooseManifest(i, parsePlatformString("linux/arm/v6"))).toBeUndefined();
    expect(chooseManifest(i, { os: "windows", architecture: "amd64" })).toBeUndefined();
  });

  it("falls back to an entry without a platform, and skips nested indexes", () => {
    const nested = desc("a", { os: "linux", architecture: "amd64" }, { mediaType: MEDIA.ociIndex });
    const bare = desc("b");
    expect(chooseManifest(index([nested, bare]), { os: "linux", architecture: "amd64" })).toBe(bare);
  });

  it("parses --platform and knows the host's", () => {
    expect(parsePlatformString("linux/x86_64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(parsePlatformString("linux/arm64/v8")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
    for (const bad of ["linux", "linux/", "linux/arm/v7/x", "Linux/amd64"]) expect(() => parsePlatformString(bad), bad).toThrow(/invalid platform/);
    expect(hostPlatform("x64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(hostPlatform("arm64")).toEqual({ os: "linux", architecture: "arm64" });
  });
});

interface FakeRegistry {
  host: string;
  /** Paths requested, in order. */
  requests: string[];
  /** Most blob downloads at once. */
  peak: number;
  /** Requests that broke the rules: a token for another scope, credentials sent to the blob storage. */
  violations: string[];
  close(): Promise<void>;
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

/**
 * Serves `repo` from `blobs`, `tags` naming manifests or indexes. Every /v2/
 * request needs the token from /token; blob GETs are redirected to a storage
 * server of another origin, where no Authorization may arrive. `corrupt`
 * digests are served with their last byte altered.
 */
async function fakeRegistry(o: { repo: string; blobs: Map<string, Buffer>; tags: Record<string, Desc>; corrupt?: string[] }): Promise<FakeRegistry> {
  const state = { requests: [] as string[], violations: [] as string[], peak: 0, active: 0 };
  const storage = http.createServer((req, res) => {
    if (req.headers.authorization !== undefined) state.violations.push(`authorization sent to storage: ${req.url}`);
    const digest = req.url!.slice(1);
    let bytes = o.blobs.get(digest)!;
    if (o.corrupt?.includes(digest)) bytes = Buffer.concat([bytes.subarray(0, -1), Buffer.from([bytes.at(-1)! ^ 1])]);
    state.active++;
    state.peak = Math.max(state.peak, state.active);
    res.write(bytes.subarray(0, 10));
    setTimeout(() => {
      state.active--;
      res.end(bytes.subarray(10));
    }, 30);
  });
  const storageHost = await listen(storage);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    state.requests.push(url.pathname);
    if (url.pathname === "/token") {
      if (!/^repository:[a-z0-9/]+:pull$/.test(url.searchParams.get("scope") ?? "")) state.violations.push(`token scope ${url.searchParams.get("scope")}`);
      return res.end(JSON.stringify({ token: "t0k" }));
    }
    if (req.headers.authorization !== "Bearer t0k") {
      res.writeHead(401, { "www-authenticate": `Bearer realm="http://${req.headers.host}/token",service="fake"` });
      return res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }));
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    const notFound = (code: string): void => {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code, message: code.toLowerCase().replace("_", " ") }] }));
    };
    if (!m || m[1] !== o.repo) return notFound("NAME_UNKNOWN");
    if (m[2] === "blobs") {
      if (!o.blobs.has(m[3]!)) return notFound("BLOB_UNKNOWN");
      res.writeHead(307, { location: `http://${storageHost}/${m[3]}` });
      return res.end();
    }
    const digest = o.tags[m[3]!]?.digest ?? m[3]!;
    const bytes = o.blobs.get(digest);
    if (!bytes) return notFound("MANIFEST_UNKNOWN");
    const { mediaType } = JSON.parse(bytes.toString()) as { mediaType: string };
    res.writeHead(200, { "content-type": mediaType, "docker-content-digest": digest });
    res.end(bytes);
  });
  const host = await listen(server);
  return {
    host,
    get requests() {
      return state.requests;
    },
    get peak() {
      return state.peak;
    },
    violations: state.violations,
    close: async () => {
      for (const s of [server, storage]) {
        s.closeAllConnections();
        await new Promise((resolve) => s.close(resolve));
      }
    },
  };
}

describe("pull", () => {
  let root: string;
  let store: ImageStore;
  let registry: FakeRegistry | undefined;

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), "pull-test-"));
    store = createImageStore({ root, logger: createLogger({ component: "test", write: () => undefined }) });
  });

  afterEach(async () => {
    expect(registry?.violations ?? []).toEqual([]);
    await registry?.close();
    registry = undefined;
    await fs.rm(root, { recursive: true, force: true });
  });

  /** An index of an amd64 image with four layers and an arm64 one with one. */
  async function twoPlatforms(): Promise<{ layout: LayoutBuilder; index: Desc; amd64: Desc; layers: string[] }> {
    const layout = new LayoutBuilder();
    const files = await Promise.all([1, 2, 3, 4].map((i) => makeTar([{ name: `f${i}`, data: `layer ${i}\n`.repeat(100) }])));
    const amd64 = layout.image({ layers: files, gzip: true }).manifest;
    const arm64 = layout.image({ layers: [files[0]!], gzip: true, architecture: "arm64" }).manifest;
    const attestation = { ...layout.image({ layers: [] }).manifest, platform: { os: "unknown", architecture: "unknown" } };
    const index = layout.index([amd64, arm64, attestation]);
    const manifest = JSON.parse(layout.blobs.get(amd64.digest)!.toString()) as { layers: { digest: string }[] };
    return { layout, index, amd64, layers: manifest.layers.map((l) => l.digest) };
  }

  async function leftovers(): Promise<string[]> {
    const ingest = path.join(root, "content", "ingest");
    return existsSync(ingest) ? fs.readdir(ingest) : [];
  }

  it("pulls the host's platform from an index, records it like a load, and resolves it", async () => {
    const { layout, index, amd64, layers } = await twoPlatforms();
    registry = await fakeRegistry({ repo: "team/app", blobs: layout.blobs, tags: { "1.0": index } });
    const progress: PullProgress[] = [];
    const record = await store.pull(`${registry.host}/team/app:1.0`, {
      platform: { os: "linux", architecture: "amd64" },
      maxConcurrentDownloads: 2,
      onProgress: (p) => progress.push(p),
    });
    expect(record).toMatchObject({ reference: `${registry.host}/team/app:1.0`, digest: index.digest, platforms: [{ os: "linux", architecture: "amd64" }] });
    expect(await store.list()).toEqual([record]);
    // Every layer reported from 0 to its size, at most two downloading at once.
    for (const digest of layers) {
      const mine = progress.filter((p) => p.digest === digest);
      expect(mine[0]).toMatchObject({ done: 0, present: false });
      expect(mine.at(-1)!.done).toBe(mine.at(-1)!.total);
    }
    expect(registry.peak).toBe(2);
    expect(registry.requests.filter((p) => p === "/token")).toHaveLength(1);
    // The arm64 image's manifest was never fetched.
    expect(registry.requests.filter((p) => p.includes("/manifests/"))).toEqual(["/v2/team/app/manifests/1.0", "/v2/team/app/manifests/1.0", `/v2/team/app/manifests/${amd64.digest}`]);

    const resolved = await store.resolve(`${registry.host}/team/app:1.0`, { os: "linux", architecture: "amd64" });
    expect(resolved.manifestDigest).toBe(amd64.digest);
    expect(await leftovers()).toEqual([]);

    // Pulling again downloads no layer; by digest it is recorded under name@digest.
    progress.length = 0;
    const byDigest = await store.pull(`${registry.host}/team/app@${index.digest}`, { platform: { os: "linux", architecture: "amd64" }, onProgress: (p) => progress.push(p) });
    expect(byDigest.reference).toBe(`${registry.host}/team/app@${index.digest}`);
    expect(progress.every((p) => p.present)).toBe(true);
  });

  it("adds a second platform of the same index to its record", async () => {
    const { layout, index } = await twoPlatforms();
    registry = await fakeRegistry({ repo: "app", blobs: layout.blobs, tags: { latest: index } });
    const first = await store.pull(`${registry.host}/app`, { platform: { os: "linux", architecture: "amd64" } });
    const both = await store.pull(`${registry.host}/app`, { platform: parsePlatformString("linux/arm64") });
    expect(both.reference).toBe(`${registry.host}/app:latest`);
    expect(both.platforms.map((p) => p.architecture)).toEqual(["amd64", "arm64"]);
    expect(both.size).toBeGreaterThan(first.size);
  });

  it("fails a corrupt layer with nothing recorded and nothing of it stored", async () => {
    const { layout, index, layers } = await twoPlatforms();
    registry = await fakeRegistry({ repo: "app", blobs: layout.blobs, tags: { latest: index }, corrupt: [layers[2]!] });
    const err = await store.pull(`${registry.host}/app`, { platform: hostPlatform("x64") }).catch((e: unknown) => e);
    expect(isContainerError(err, "invalidArgument")).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^blob ${layers[2]} failed verification: content hashes to sha256:`));
    expect(await store.list()).toEqual([]);
    expect(existsSync(path.join(root, "content", "blobs", "sha256", layers[2]!.slice(7)))).toBe(false);
    expect(existsSync(path.join(root, "content", "blobs", "sha256", index.digest.slice(7)))).toBe(false);
    // The layers the failure cut off may leave partials for the next pull; the corrupt one leaves nothing.
    expect((await leftovers()).filter((f) => !/^[0-9a-f]{64}\.partial$/.test(f) || f.startsWith(layers[2]!.slice(7)))).toEqual([]);
  });

  it("says clearly what is missing: a tag, a repository, a platform", async () => {
    const { layout, index } = await twoPlatforms();
    registry = await fakeRegistry({ repo: "app", blobs: layout.blobs, tags: { latest: index } });
    const cases: [string, string, string, RegExp][] = [
      [`${registry.host}/app:nope`, "linux/amd64", "notFound", new RegExp(`^${registry.host}/app:nope not found \\(manifest unknown\\)$`)],
      [`${registry.host}/other:1`, "linux/amd64", "notFound", new RegExp(`^repository ${registry.host}/other not found$`)],
      [`${registry.host}/app`, "linux/riscv64", "notFound", new RegExp(`^${registry.host}/app:latest has no image for linux/riscv64$`)],
    ];
    for (const [ref, platform, code, message] of cases) {
      const err = await store.pull(ref, { platform: parsePlatformString(platform) }).catch((e: unknown) => e);
      expect(isContainerError(err, code as "notFound"), String(err)).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
    const closed = http.createServer();
    const host = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    const unreachable = await store.pull(`${host}/app`).catch((e: unknown) => e);
    expect(isContainerError(unreachable, "unavailable")).toBe(true);
    expect((unreachable as Error).message).toBe(`cannot reach registry ${host}: ECONNREFUSED`);
  });

  it("stops when aborted, as cancelled", async () => {
    const { layout, index } = await twoPlatforms();
    registry = await fakeRegistry({ repo: "app", blobs: layout.blobs, tags: { latest: index } });
    const abort = new AbortController();
    const pulling = store.pull(`${registry.host}/app`, {
      platform: { os: "linux", architecture: "amd64" },
      signal: abort.signal,
      onProgress: () => abort.abort(),
    });
    const err = await pulling.catch((e: unknown) => e);
    expect(isContainerError(err, "cancelled")).toBe(true);
    expect(await store.list()).toEqual([]);
    expect(await leftovers()).toEqual([]);
  });
});
