import { describe, expect, it } from "vitest";
import { CONFIRM, densityStop, reached, trailingDoubled, type DensityState } from "./density.js";

const state = (startsMs: number[], over: Partial<DensityState> = {}): DensityState => ({
  baselineMs: 100,
  startsMs,
  cap: 16,
  availableBytes: 10e9,
  nextVmBytes: 2e9,
  ...over,
});

describe("trailingDoubled", () => {
  it("counts the latest starts at twice the baseline or more", () => {
    expect(trailingDoubled([], 100)).toBe(0);
    expect(trailingDoubled([100, 150, 200, 250], 100)).toBe(2);
    expect(trailingDoubled([100, 250, 150, 200], 100)).toBe(1);
    expect(trailingDoubled([199], 100)).toBe(0);
    expect(trailingDoubled([200, 300], 100)).toBe(2);
  });
});

describe("densityStop", () => {
  it("starts the first container", () => {
    expect(densityStop(state([]))).toBeUndefined();
  });

  it("keeps going after one slow start: it may be noise", () => {
    expect(densityStop(state([100, 120, 210]))).toBeUndefined();
    expect(densityStop(state([100, 210, 120]))).toBeUndefined();
  });

  it(`stops after ${CONFIRM} slow starts in a row`, () => {
    expect(densityStop(state([100, 120, 210, 230]))).toBe("start time doubled");
  });

  it("stops at the cap", () => {
    expect(densityStop(state([100, 110, 120], { cap: 3 }))).toBe("cap of 3");
  });

  it("stops when one more VM would not fit in the host's memory", () => {
    expect(densityStop(state([100], { availableBytes: 1e9 }))).toBe("host memory");
  });
});

describe("reached", () => {
  it("does not count the confirming slow starts", () => {
    expect(reached([100, 120, 210, 230], "start time doubled")).toBe(4 - CONFIRM);
  });

  it("counts every start at the cap or the memory limit", () => {
    expect(reached([100, 110, 120], "cap of 3")).toBe(3);
    expect(reached([100], "host memory")).toBe(1);
  });
});
