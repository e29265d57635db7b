// Pushes through the image store to an in-process registry that speaks the
// distribution API's upload half with token auth: blobs checked with HEAD,
// uploaded monolithically or in chunks, manifests checked for what they
// reference; then pulled back into another store.
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { createLogger } from "../../../lib/log/index.js";
import { ContentStore } from "../content/index.js";
import { createImageStore } from "../index.js";
import { hostPlatform } from "../oci.js";
import { parseReference } from "../reference.js";
import { LayoutBuilder, makeTar } from "../testing.js";
import type { ImageStore, PullProgress } from "../types.js";
import { pushImage } from "./push.js";

interface FakeRegistry {
  host: string;
  blobs: Map<string, Buffer>;
  manifests: Map<string, { bytes: Buffer; type: string }>;
  /** Method and path of every /v2/ request with the token. */
  requests: string[];
  violations: string[];
  close(): Promise<void>;
}

const sha = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function fakeRegistry(repo: string, preloaded: Buffer[] = []): Promise<FakeRegistry> {
  const blobs = new Map(preloaded.map((b) => [sha(b), b]));
  const manifests = new Map<string, { bytes: Buffer; type: string }>();
  const uploads = new Map<string, Buffer>();
  const requests: string[] = [];
  const violations: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url!, "http://x");
      const send = (status: number, headers: Record<string, string> = {}, data?: string | Buffer): void => {
        res.writeHead(status, headers);
        res.end(data);
      };
      if (url.pathname === "/token") {
        if (!/^repository:[a-z0-9/]+:pull(,push)?$/.test(url.searchParams.get("scope") ?? "")) violations.push(`token scope ${url.searchParams.get("scope")}`);
        return send(200, {}, JSON.stringify({ token: "push-token" }));
      }
      if (req.headers.authorization !== "Bearer push-token") {
        return send(401, { "www-authenticate": `Bearer realm="http://${req.headers.host}/token",service="fake"` });
      }
      requests.push(`${req.method} ${url.pathname}`);
      const prefix = `/v2/${repo}/`;
      if (!url.pathname.startsWith(prefix)) return send(404, {}, JSON.stringify({ errors: [{ code: "NAME_UNKNOWN" }] }));
      const rest = url.pathname.slice(prefix.length);
      if (req.method === "HEAD" && rest.startsWith("blobs/")) return send(blobs.has(rest.slice(6)) ? 200 : 404);
      if (req.method === "POST" && rest === "blobs/uploads/") {
        const id = randomUUID();
        uploads.set(id, Buffer.alloc(0));
        return send(202, { location: `${prefix}blobs/uploads/${id}?_state=s0` });
      }
      const upload = /^blobs\/uploads\/([^/]+)$/.exec(rest);
      if (upload && uploads.has(upload[1]!)) {
        const id = upload[1]!;
        const have = uploads.get(id)!;
        if (req.method === "PATCH") {
          const range = /^(\d+)-(\d+)$/.exec(String(req.headers["content-range"]));
          if (!range || Number(range[1]) !== have.length || Number(range[2]) !== have.length + body.length - 1) return send(416);
          uploads.set(id, Buffer.concat([have, body]));
          return send(202, { location: `${prefix}blobs/uploads/${id}?_state=s${have.length + body.length}`, range: `0-${have.length + body.length - 1}` });
        }
        if (req.method === "PUT") {
          const all = Buffer.concat([have, body]);
          if (sha(all) !== url.searchParams.get("digest")) return send(400, {}, JSON.stringify({ errors: [{ code: "DIGEST_INVALID", message: "digest invalid" }] }));
          blobs.set(sha(all), all);
          uploads.delete(id);
          return send(201, { location: `${prefix}blobs/${sha(all)}` });
        }
      }
      const manifest = /^manifests\/([^/]+)$/.exec(rest);
      if (manifest && req.method === "PUT") {
        const doc = JSON.parse(body.toString()) as { config?: { digest: string }; layers?: { digest: string }[]; manifests?: { digest: string }[] };
        const missing = [doc.config, ...(doc.layers ?? [])].filter((d) => d && !blobs.has(d.digest)).concat((doc.manifests ?? []).filter((m) => !manifests.has(m.digest)));
        if (missing.length > 0) return send(400, {}, JSON.stringify({ errors: [{ code: "MANIFEST_BLOB_UNKNOWN", message: `unknown ${missing[0]!.digest}` }] }));
        const entry = { bytes: body, type: String(req.headers["content-type"]) };
        manifests.set(manifest[1]!, entry);
        manifests.set(sha(body), entry);
        return send(201, { "docker-content-digest": sha(body) });
      }
      if (manifest && req.method === "GET") {
        const m = manifests.get(manifest[1]!);
        return m ? send(200, { "content-type": m.type, "docker-content-digest": sha(m.bytes) }, m.bytes) : send(404, {}, JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN" }] }));
      }
      if (req.method === "GET" && rest.startsWith("blobs/") && blobs.has(rest.slice(6))) return send(200, {}, blobs.get(rest.slice(6)));
      send(404, {}, JSON.stringify({ errors: [{ code: "BLOB_UNKNOWN" }] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    blobs,
    manifests,
    requests,
    violations,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

let root: string;
let store: ImageStore;
let registry: FakeRegistry | undefined;
const logger = createLogger({ component: "test", write: () => undefined });

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "push-test-"));
  store = createImageStore({ root: path.join(root, "a"), logger });
});

afterEach(async () => {
  expect(registry?.violations ?? []).toEqual([]);
  await registry?.close();
  registry = undefined;
  await fs.rm(root, { recursive: true, force: true });
});

describe("push", () => {
  it("uploads what the registry lacks, puts the manifest under the tag, and pulls back the same digest", async () => {
    const layout = new LayoutBuilder();
    const shared = await makeTar([{ name: "shared", data: "x".repeat(1000) }]);
    const { manifest } = layout.image({ layers: [shared, await makeTar([{ name: "own" }])], architecture: hostPlatform().architecture });
    const { platform: _p, ...entry } = manifest;
    registry = await fakeRegistry("team/app", [shared]);
    const name = `${registry.host}/team/app:1`;
    await store.load(Readable.from([await layout.tar([{ ...entry, annotations: { "io.containerd.image.name": name } }])]));

    const progress: PullProgress[] = [];
    const pushed = await store.push(name, { onProgress: (p) => progress.push(p) });
    expect(pushed).toMatchObject({ reference: name, digest: manifest.digest });
    expect(progress.filter((p) => p.present).map((p) => p.digest)).toEqual([`sha256:${createHash("sha256").update(shared).digest("hex")}`]);
    expect(registry.manifests.get("1")?.bytes.equals(layout.blobs.get(manifest.digest)!)).toBe(true);
    // The shared layer was only asked about; the others went up in one PUT each.
    expect(registry.requests.filter((r) => r.startsWith("PATCH"))).toEqual([]);
    expect(registry.requests.filter((r) => r.startsWith("POST"))).toHaveLength(2);

    const other = createImageStore({ root: path.join(root, "b"), logger });
    const pulled = await other.pull(`${registry.host}/team/app@${manifest.digest}`);
    expect(pulled.digest).toBe(manifest.digest);
    // Pushing again moves nothing.
    const again: PullProgress[] = [];
    await store.push(name, { onProgress: (p) => again.push(p) });
    expect(again.every((p) => p.present)).toBe(true);
  });

  it("uploads big blobs in chunks, and pushes an index with all its manifests", async () => {
    const content = new ContentStore(path.join(root, "c"));
    const layout = new LayoutBuilder();
    const big = await makeTar([{ name: "big", data: Buffer.alloc(5000, 7) }]);
    const amd = layout.image({ layers: [big], architecture: "amd64" });
    const arm = layout.image({ layers: [await makeTar([{ name: "small" }])], architecture: "arm64" });
    const index = layout.index([amd.manifest, arm.manifest]);
    for (const bytes of layout.blobs.values()) await content.put(bytes);
    registry = await fakeRegistry("multi");
    const result = await pushImage({
      ref: parseReference(`${registry.host}/multi:2`),
      digest: index.digest,
      platform: hostPlatform(),
      content,
      registry: { push: true },
      concurrency: 2,
      onProgress: () => undefined,
      chunkBytes: 1024,
    });
    expect(result.digest).toBe(index.digest);
    expect(registry.requests.filter((r) => r.startsWith("PATCH")).length).toBeGreaterThanOrEqual(5);
    for (const d of [amd.manifest.digest, arm.manifest.digest, index.digest]) expect(registry.manifests.has(d), d).toBe(true);
    expect(registry.requests.at(-1)).toBe("PUT /v2/multi/manifests/2");
  });

  it("fails with one line for an unknown image, a digest, or a registry that refuses", async () => {
    registry = await fakeRegistry("other");
    const layout = new LayoutBuilder();
    const { manifest } = layout.image({ layers: [await makeTar([{ name: "f" }])], architecture: hostPlatform().architecture });
    const { platform: _p, ...entry } = manifest;
    const name = `${registry.host}/denied/app:1`;
    await store.load(Readable.from([await layout.tar([{ ...entry, annotations: { "io.containerd.image.name": name } }])]));
    for (const [ref, code] of [
      ["nothere:1", "notFound"],
      [manifest.digest, "invalidArgument"],
      [name, "notFound"],
    ] as const) {
      const err = await store.push(ref).catch((e: unknown) => e);
      expect(isContainerError(err, code), `${ref}: ${String(err)}`).toBe(true);
      expect((err as Error).message).not.toContain("\n");
    }
  });
});
