import { describe, expect, it } from "vitest";
import { BENCHMARKS, parseIterations, parseOnly, scaled } from "./options.js";

describe("parseIterations", () => {
  it("defaults to 10 when unset or blank", () => {
    expect(parseIterations(undefined)).toBe(10);
    expect(parseIterations(" ")).toBe(10);
  });

  it("takes a positive integer", () => {
    expect(parseIterations("3")).toBe(3);
  });

  it.each(["0", "-1", "2.5", "many"])("refuses %s", (v) => {
    expect(() => parseIterations(v)).toThrow(/BENCH_ITERATIONS/);
  });
});

describe("parseOnly", () => {
  it("selects every row when unset or empty", () => {
    expect([...parseOnly(undefined)]).toEqual([...BENCHMARKS]);
    expect([...parseOnly(" , ")]).toEqual([...BENCHMARKS]);
  });

  it("selects the named rows, spaces allowed", () => {
    expect([...parseOnly("exec, throughput")].sort()).toEqual(["exec", "throughput"]);
  });

  it("names the unknown rows and lists the known ones", () => {
    expect(() => parseOnly("exec,warp")).toThrow(/unknown warp; known: cold, concurrency/);
  });
});

describe("scaled", () => {
  it("divides and rounds, never below one", () => {
    expect(scaled(10, 4)).toBe(3);
    expect(scaled(10, 3)).toBe(3);
    expect(scaled(2, 10)).toBe(1);
    expect(scaled(1, 1)).toBe(1);
  });
});
