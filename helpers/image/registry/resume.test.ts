// Pulls through an unreliable in-process registry: connections dropped
// after N bytes, 5xx answers, blobs that end short, partials left behind.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { ContentStore } from "../content/index.js";
import { parseReference } from "../reference.js";
import { LayoutBuilder, makeTar } from "../testing.js";
import { pullImage } from "./pull.js";

const RETRY = { attempts: 3, baseMs: 1 };

interface Flaky {
  host: string;
  /** Blob requests as `<digest prefix> <range header or "all">`. */
  blobRequests: string[];
  /** Send at most this many bytes of a blob per connection, then drop it. */
  dropAfter?: number;
  /** Answer this many blob requests with 503 first. */
  fail5xx: number;
  /** End every blob answer cleanly after this many bytes of the blob, chunked (no length). */
  endAt?: number;
  close(): Promise<void>;
}

/** Serves `app:latest` (manifest `tag`) from `blobs`, with Range support and the faults the test sets. */
async function flakyRegistry(blobs: Map<string, Buffer>, tag: string, manifestType?: string): Promise<Flaky> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    if (url.pathname === "/v2/app/manifests/latest") {
      const bytes = blobs.get(tag)!;
      res.writeHead(200, { "content-type": manifestType ?? (JSON.parse(bytes.toString()) as { mediaType: string }).mediaType });
      return res.end(bytes);
    }
    const m = /^\/v2\/app\/blobs\/(.+)$/.exec(url.pathname);
    const bytes = m ? blobs.get(m[1]!) : undefined;
    if (!bytes) {
      res.writeHead(404, { "content-type": "application/json" });
      return res.end(JSON.stringify({ errors: [{ code: "BLOB_UNKNOWN", message: "blob unknown" }] }));
    }
    flaky.blobRequests.push(`${m![1]!.slice(7, 15)} ${req.headers.range ?? "all"}`);
    if (flaky.fail5xx > 0) {
      flaky.fail5xx--;
      res.writeHead(503, { "content-type": "application/json" });
      return res.end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "try later" }] }));
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    const end = Math.min(bytes.length, flaky.endAt ?? bytes.length);
    if (flaky.endAt !== undefined) {
      res.writeHead(range ? 206 : 200, range ? { "content-range": `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {});
      return res.end(bytes.subarray(start, Math.max(start, end)));
    }
    const headers = { "content-length": String(bytes.length - start), ...(range ? { "content-range": `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}) };
    res.writeHead(range ? 206 : 200, headers);
    if (flaky.dropAfter === undefined || bytes.length - start <= flaky.dropAfter) return res.end(bytes.subarray(start));
    res.write(bytes.subarray(start, start + flaky.dropAfter), () => setTimeout(() => res.socket?.destroy(), 20));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const flaky: Flaky = {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    blobRequests: [],
    fail5xx: 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return flaky;
}

let root: string;
let content: ContentStore;
let registry: Flaky | undefined;

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "resume-test-"));
  content = new ContentStore(path.join(root, "content"));
});

afterEach(async () => {
  await registry?.close();
  registry = undefined;
  await fs.rm(root, { recursive: true, force: true });
});

/** An image of one uncompressed layer of `size` random bytes (in a file), with its layer's digest. */
async function image(size: number, o: { manifestMediaType?: string } = {}): Promise<{ blobs: Map<string, Buffer>; tag: string; layer: string; layerBytes: Buffer }> {
  const layout = new LayoutBuilder();
  const tar = await makeTar([{ name: "data", data: randomBytes(size) }]);
  const { manifest } = layout.image({ layers: [tar], ...(o.manifestMediaType ? { manifestMediaType: o.manifestMediaType } : {}) });
  const layer = [...layout.blobs.keys()].find((d) => layout.blobs.get(d) === tar)!;
  return { blobs: layout.blobs, tag: manifest.digest, layer, layerBytes: tar };
}

function pull(host: string): ReturnType<typeof pullImage> {
  return pullImage({
    ref: parseReference(`${host}/app:latest`),
    platform: { os: "linux", architecture: "amd64" },
    content,
    registry: {},
    concurrency: 3,
    onProgress: () => undefined,
    retry: RETRY,
  });
}

const partial = (digest: string): string => path.join(root, "content", "ingest", `${digest.slice(7)}.partial`);

describe("resumable pulls", () => {
  it("resumes a blob cut off mid-download with Range requests, and stores it verified", async () => {
    const img = await image(200_000);
    registry = await flakyRegistry(img.blobs, img.tag);
    registry.dropAfter = 64 * 1024;
    const pulled = await pull(registry.host);
    expect(pulled.digest).toBe(img.tag);
    // Each request goes on from what arrived before the drop (a reset may lose some of what was in flight): never from 0 again.
    const id = img.layer.slice(7, 15);
    const starts = registry.blobRequests.filter((r) => r.startsWith(id)).map((r) => (r.endsWith(" all") ? 0 : Number(/bytes=(\d+)-/.exec(r)![1])));
    expect(starts[0]).toBe(0);
    expect(starts.length).toBeGreaterThanOrEqual(Math.ceil(img.layerBytes.length / (64 * 1024)));
    for (let i = 1; i < starts.length; i++) {
      expect(starts[i]).toBeGreaterThan(starts[i - 1]!);
      expect(starts[i]! - starts[i - 1]!).toBeLessThanOrEqual(64 * 1024);
    }
    expect(await fs.readFile(content.blobPath(img.layer))).toEqual(img.layerBytes);
    expect(existsSync(partial(img.layer))).toBe(false);
  });

  it("retries 5xx answers with backoff, and gives up after its attempts with one line", async () => {
    const img = await image(1000);
    registry = await flakyRegistry(img.blobs, img.tag);
    registry.fail5xx = 2;
    await pull(registry.host);
    expect(registry.blobRequests).toHaveLength(4); // the config: 503, 503, 200; the layer: 200

    await fs.rm(root, { recursive: true, force: true });
    registry.blobRequests.length = 0;
    registry.fail5xx = 100;
    const err = await pull(registry.host).catch((e: unknown) => e);
    expect(isContainerError(err, "unavailable"), String(err)).toBe(true);
    expect((err as Error).message).toBe(`registry ${registry.host} failed: try later`);
    expect(registry.blobRequests).toHaveLength(RETRY.attempts);
  });

  it("fails a blob that keeps ending short with one line, leaves its partial, and the next pull goes on from it", async () => {
    const img = await image(50_000);
    registry = await flakyRegistry(img.blobs, img.tag);
    const size = img.layerBytes.length;
    registry.endAt = 30_000;
    const err = await pull(registry.host).catch((e: unknown) => e);
    expect(isContainerError(err, "unavailable"), String(err)).toBe(true);
    expect((err as Error).message).toBe(`download of blob ${img.layer} from ${registry.host} ended after 30000 of ${size} bytes`);
    expect(await content.has(img.layer)).toBe(false);
    expect((await fs.stat(partial(img.layer))).size).toBe(30_000);

    registry.endAt = undefined;
    registry.blobRequests.length = 0;
    await pull(registry.host);
    expect(registry.blobRequests).toEqual([`${img.layer.slice(7, 15)} bytes=30000-`]);
    expect(await content.has(img.layer)).toBe(true);
    expect(existsSync(partial(img.layer))).toBe(false);
  });

  it("starts over once when a resumed partial fails verification", async () => {
    const img = await image(50_000);
    registry = await flakyRegistry(img.blobs, img.tag);
    await fs.mkdir(path.dirname(partial(img.layer)), { recursive: true });
    await fs.writeFile(partial(img.layer), randomBytes(10_000));
    await pull(registry.host);
    const id = img.layer.slice(7, 15);
    expect(registry.blobRequests.filter((r) => r.startsWith(id))).toEqual([`${id} bytes=10000-`, `${id} all`]);
    expect(await content.has(img.layer)).toBe(true);
  });

  it("refuses a manifest of the wrong media type with one line, and stores nothing", async () => {
    const img = await image(100, { manifestMediaType: "application/vnd.example.thing+json" });
    registry = await flakyRegistry(img.blobs, img.tag, "application/vnd.example.thing+json");
    const err = await pull(registry.host).catch((e: unknown) => e);
    expect(isContainerError(err, "invalidArgument"), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/media type application\/vnd\.example\.thing\+json/);
    expect((err as Error).message).not.toContain("\n");
    expect(await content.list()).toEqual([]);
  });
});
