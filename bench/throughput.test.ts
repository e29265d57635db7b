import { describe, expect, it } from "vitest";
import { MiB } from "./parse.js";
import { shortfall } from "./throughput.js";

describe("shortfall", () => {
  it("is nothing for a clean exit with every byte", () => {
    expect(shortfall({ code: 0, bytes: 256 * MiB, stderr: "" }, 256 * MiB)).toBeUndefined();
  });

  it("names the exit, the bytes that came and the first error line", () => {
    expect(shortfall({ code: 125, bytes: 230 * MiB, stderr: "Error: Call cancelled\nmore\n" }, 256 * MiB)).toBe(
      "exit 125 after 230 of 256 MiB: Error: Call cancelled",
    );
  });

  it("catches missing bytes after a clean exit", () => {
    expect(shortfall({ code: 0, bytes: 1, stderr: "" }, 256 * MiB)).toBe("exit 0 after 0 of 256 MiB");
  });
});
