import { describe, expect, it } from "vitest";
import { progressLines } from "./progress.js";

function fakeOut(isTTY: boolean, columns = 80): { out: NodeJS.WriteStream; written: string[] } {
  const written: string[] = [];
  const out = { isTTY, columns, write: (s: string) => written.push(s) > 0 } as unknown as NodeJS.WriteStream;
  return { out, written };
}

describe("progressLines", () => {
  it("on a terminal, gives each id a line and rewrites it in place", () => {
    const { out, written } = fakeOut(true);
    const lines = progressLines(out);
    lines.set("a", "a: 0 B", false);
    lines.set("b", "b: 0 B", false);
    lines.set("a", "a: done", true);
    lines.set("b", "b: done", true);
    expect(written).toEqual(["a: 0 B\n", "b: 0 B\n", "\x1b[2A\r\x1b[2Ka: done\x1b[2B\r", "\x1b[1A\r\x1b[2Kb: done\x1b[1B\r"]);
  });

  it("cuts lines to the terminal's width so that they never wrap", () => {
    const { out, written } = fakeOut(true, 10);
    progressLines(out).set("a", "0123456789abc", false);
    expect(written).toEqual(["012345678\n"]);
  });

  it("elsewhere, prints each id once, when final", () => {
    const { out, written } = fakeOut(false);
    const lines = progressLines(out);
    lines.set("a", "a: 1 B", false);
    lines.set("a", "a: done", true);
    lines.set("b", "b: already present", true);
    lines.set("a", "a: done", true);
    expect(written).toEqual(["a: done\n", "b: already present\n"]);
  });
});
