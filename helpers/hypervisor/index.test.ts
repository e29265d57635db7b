import { describe, expect, it } from "vitest";
import { offersRosetta } from "./index.js";

describe("offersRosetta", () => {
  it("is the macOS backend on Apple silicon only", () => {
    expect(offersRosetta("darwin", "arm64")).toBe(true);
    expect(offersRosetta("darwin", "x64")).toBe(false);
    expect(offersRosetta("linux", "arm64")).toBe(false);
    expect(offersRosetta("linux", "x64")).toBe(false);
  });
});
