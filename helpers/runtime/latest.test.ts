import { describe, expect, it } from "vitest";
import { latestInOrder } from "./latest.js";

describe("latestInOrder", () => {
  it("runs one call at a time, ends at the latest value, and skips the superseded ones", async () => {
    const seen: number[] = [];
    let active = 0;
    const call = latestInOrder(async (n: number) => {
      active++;
      expect(active).toBe(1);
      await new Promise((r) => setTimeout(r, 5));
      seen.push(n);
      active--;
    });
    await Promise.all([call(1), call(2), call(3), call(4)]);
    expect(seen).toEqual([1, 4]);
    await call(5);
    expect(seen).toEqual([1, 4, 5]);
  });

  it("passes an error on, and serves the next call afterwards", async () => {
    const call = latestInOrder(async (n: number) => {
      if (n === 1) throw new Error("boom");
    });
    await expect(call(1)).rejects.toThrow("boom");
    await expect(call(2)).resolves.toBeUndefined();
  });
});
