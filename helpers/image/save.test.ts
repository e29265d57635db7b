// save: the archive loads back with the same digests and names, and skopeo,
// an independent reader, reads both formats.
import { execFile } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../lib/errors/index.js";
import { createLogger } from "../../lib/log/index.js";
import { repoRoot } from "../../lib/paths/index.js";
import { createImageStore } from "./index.js";
import { LayoutBuilder, makeTar, readTar } from "./testing.js";
import type { ImageStore } from "./types.js";

const run = promisify(execFile);
const demoDir = path.join(repoRoot(), "build", "demo");
const demoDocker = path.join(demoDir, "demo-docker.tar");

let root: string;
const stores: ImageStore[] = [];

function newStore(name: string): ImageStore {
  return createImageStore({ root: path.join(root, name), logger: createLogger({ component: "test", write: () => undefined }) });
}

beforeAll(async () => {
  if (!existsSync(path.join(demoDir, "cache-key"))) {
    await run(process.execPath, [path.join(repoRoot(), "scripts", "build-demo-image.mjs")]);
  }
}, 120_000);

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "image-save-test-"));
  stores.length = 0;
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function saved(store: ImageStore, refs: string[], format: "oci" | "docker"): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await store.save(refs, format)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe("save", () => {
  it("round-trips the demo image in both formats with the same digest, and skopeo reads both", async () => {
    const source = newStore("a");
    const [demo] = await source.load(createReadStream(demoDocker));
    await source.tag("demo", "localhost:5000/team/demo:v1");
    for (const format of ["oci", "docker"] as const) {
      const tar = await saved(source, ["demo:latest", "localhost:5000/team/demo:v1"], format);
      const target = newStore(`b-${format}`);
      const loaded = await target.load(Readable.from([tar]));
      expect(loaded.map((r) => [r.reference, r.digest])).toEqual([
        ["demo:latest", demo!.digest],
        ["localhost:5000/team/demo:v1", demo!.digest],
      ]);
      expect(await target.list()).toEqual(await source.list());

      const file = path.join(root, `demo-${format}.tar`);
      await fs.writeFile(file, tar);
      const transport = format === "oci" ? `oci-archive:${file}:v1` : `docker-archive:${file}:demo:latest`;
      const { stdout } = await run("skopeo", ["inspect", "--raw", transport]);
      const config = (await source.inspect("demo")).configDigest;
      expect((JSON.parse(stdout) as { config: { digest: string } }).config.digest).toBe(config);
    }
  });

  it("writes the same bytes twice, and a multi-platform index with only what is stored", async () => {
    const source = newStore("a");
    const layout = new LayoutBuilder();
    const amd = layout.image({ layers: [await makeTar([{ name: "a" }])], architecture: "amd64" });
    const arm = layout.image({ layers: [await makeTar([{ name: "b" }])], architecture: "arm64" });
    const index = layout.index([amd.manifest, arm.manifest]);
    await source.load(Readable.from([await layout.tar([{ ...index, annotations: { "io.containerd.image.name": "multi:1" } }], { omit: [arm.manifest.digest] })]));
    const first = await saved(source, ["multi:1"], "docker");
    expect((await saved(source, ["multi:1"], "docker")).equals(first)).toBe(true);
    const entries = await readTar(first);
    const names = entries.map((e) => e.header.name);
    expect(names).toContain(`blobs/sha256/${index.digest.slice(7)}`);
    expect(names).not.toContain(`blobs/sha256/${arm.manifest.digest.slice(7)}`);
    const manifestJson = JSON.parse(entries.find((e) => e.header.name === "manifest.json")!.data.toString()) as { Config: string; RepoTags: string[] }[];
    expect(manifestJson).toEqual([{ Config: `blobs/sha256/${amd.config.slice(7)}`, RepoTags: ["multi:1"], Layers: [expect.stringMatching(/^blobs\/sha256\//)] }]);
    const [loaded] = await newStore("b").load(Readable.from([first]));
    expect(loaded).toMatchObject({ reference: "multi:1", digest: index.digest });
  });

  it("fails before writing anything for an unknown image or format", async () => {
    const source = newStore("a");
    await source.load(createReadStream(demoDocker));
    for (const [refs, format, code] of [
      [["demo", "nope"], "oci", "notFound"],
      [[], "oci", "invalidArgument"],
      [["demo"], "tarball", "invalidArgument"],
    ] as const) {
      const err = await source.save([...refs], format as "oci").catch((e: unknown) => e);
      expect(isContainerError(err, code), String(err)).toBe(true);
    }
    // The store is not left held: a prune runs.
    expect((await source.prune({ users: new Map() })).removed).toEqual([]);
  });
});
