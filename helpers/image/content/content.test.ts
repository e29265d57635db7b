import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { sha256 } from "../testing.js";
import { ContentStore, ImageRecords } from "./index.js";

let root: string;

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "content-test-"));
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe("ContentStore", () => {
  it("stores verified blobs by digest", async () => {
    const store = new ContentStore(root);
    const bytes = Buffer.from("hello");
    const dir = await store.ingestDir();
    const file = await store.writeIngest(dir, [bytes]);
    expect(file).toMatchObject({ digest: sha256(bytes), size: 5 });
    await store.commit(file, { digest: sha256(bytes), size: 5 });
    expect((await store.read(sha256(bytes))).toString()).toBe("hello");
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it("drops content that does not match what was expected", async () => {
    const store = new ContentStore(root);
    const dir = await store.ingestDir();
    for (const expected of [{ digest: sha256(Buffer.from("other")) }, { size: 4 }]) {
      const file = await store.writeIngest(dir, [Buffer.from("hello")]);
      const err = await store.commit(file, expected).catch((e: unknown) => e);
      expect(isContainerError(err, "invalidArgument")).toBe(true);
      expect(await fs.readdir(dir)).toEqual([]);
    }
    expect(await store.has(sha256(Buffer.from("hello")))).toBe(false);
  });
});

describe("ContentStore.resume", () => {
  it("keeps a partial between downloads, one download of a digest at a time, and verifies on commit", async () => {
    const store = new ContentStore(root);
    const bytes = Buffer.from("0123456789");
    const want = { digest: sha256(bytes), size: bytes.length };
    const first = await store.resume(want);
    expect([first.offset, first.resumed]).toEqual([0, false]);
    await expect(first.append(0, (async function* () {
      yield bytes.subarray(0, 4);
      throw new Error("connection reset");
    })())).rejects.toThrow("connection reset");
    expect(first.offset).toBe(4);
    let secondOpened = false;
    const second = store.resume(want).then((p) => ((secondOpened = true), p));
    await new Promise((r) => setTimeout(r, 20));
    expect(secondOpened).toBe(false);
    await first.release();

    const resumed = await second;
    expect([resumed.offset, resumed.resumed]).toEqual([4, true]);
    await resumed.append(4, [Buffer.from("45678X")]);
    await expect(resumed.commit()).rejects.toThrow(/failed verification: content hashes to/);
    // A failed verification empties the partial: the next try starts over.
    expect(resumed.offset).toBe(0);
    await resumed.append(0, [bytes]);
    await resumed.commit();
    await resumed.release();
    expect(await store.read(want.digest)).toEqual(bytes);
    expect(await fs.readdir(path.join(root, "ingest"))).toEqual([]);
  });
});

describe("ImageRecords", () => {
  it("serialises concurrent updates and writes atomically", async () => {
    const records = new ImageRecords(path.join(root, "images.json"));
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        records.update((all) => {
          all.set(`img${i}:latest`, { reference: `img${i}:latest`, digest: `sha256:${"0".repeat(64)}`, platforms: [], size: i });
        }),
      ),
    );
    expect((await records.list()).map((r) => r.reference)).toHaveLength(20);
    expect((await fs.readdir(root)).sort()).toEqual(["images.json"]);
  });

  it("keeps going after a failed update", async () => {
    const records = new ImageRecords(path.join(root, "images.json"));
    const failed = records.update(() => {
      throw new Error("boom");
    });
    const next = records.update((all) => all.set("a:1", { reference: "a:1", digest: "sha256:" + "1".repeat(64), platforms: [], size: 1 }));
    await expect(failed).rejects.toThrow("boom");
    await next;
    expect((await records.list()).map((r) => r.reference)).toEqual(["a:1"]);
  });
});
