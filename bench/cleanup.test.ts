import { describe, expect, it } from "vitest";
import { Cleanup, cleanUpActive, withCleanup } from "./cleanup.js";

describe("Cleanup", () => {
  it("runs steps last-first and keeps going past a failure", async () => {
    const order: string[] = [];
    const c = new Cleanup();
    c.add("a", () => void order.push("a"));
    c.add("b", () => {
      order.push("b");
      throw new Error("boom");
    });
    c.add("c", async () => void order.push("c"));
    const failures = await c.run();
    expect(order).toEqual(["c", "b", "a"]);
    expect(failures.map((f) => f.message)).toEqual(["clean-up of b failed: boom"]);
    expect(await c.run()).toEqual([]);
  });

  it("runs a step early only once", async () => {
    let n = 0;
    const c = new Cleanup();
    const now = c.add("x", () => void n++);
    await now();
    await now();
    await c.run();
    expect(n).toBe(1);
  });
});

describe("withCleanup", () => {
  it("cleans up after success and returns the value", async () => {
    let cleaned = false;
    const v = await withCleanup(async (c) => {
      c.add("x", () => void (cleaned = true));
      return 42;
    });
    expect(v).toBe(42);
    expect(cleaned).toBe(true);
  });

  it("cleans up after a failure and rethrows the body's error, not the clean-up's", async () => {
    let cleaned = false;
    const stderr = process.stderr.write;
    process.stderr.write = () => true;
    try {
      await expect(
        withCleanup(async (c) => {
          c.add("x", () => void (cleaned = true));
          c.add("y", () => {
            throw new Error("also broken");
          });
          throw new Error("body failed");
        }),
      ).rejects.toThrow("body failed");
    } finally {
      process.stderr.write = stderr;
    }
    expect(cleaned).toBe(true);
  });

  it("fails when only the clean-up fails", async () => {
    await expect(
      withCleanup(async (c) => {
        c.add("y", () => {
          throw new Error("left a VM");
        });
      }),
    ).rejects.toThrow("clean-up of y failed: left a VM");
  });
});

describe("cleanUpActive", () => {
  it("runs the clean-up of a row still running, once", async () => {
    let n = 0;
    let release!: () => void;
    const running = withCleanup(async (c) => {
      c.add("vm", () => void n++);
      await new Promise<void>((r) => (release = r));
    });
    await new Promise((r) => setTimeout(r, 0));
    expect(await cleanUpActive()).toEqual([]);
    expect(n).toBe(1);
    release();
    await running;
    expect(n).toBe(1);
  });
});
