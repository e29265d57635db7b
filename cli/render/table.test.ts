import { describe, expect, it } from "vitest";
import { formatAgo, formatBytes, renderJson, renderTable } from "./table.js";

describe("renderTable on a terminal", () => {
  const rows = [["0123456789ab", "web", "sh -c while true; do echo hello; sleep 1; done", "running"]];
  const headers = ["ID", "NAME", "COMMAND", "STATUS"];

  it("fits the width: the widest column gives way, its cells cut with …", () => {
    const out = renderTable(headers, rows, 50);
    for (const l of out.trimEnd().split("\n")) expect(l.length).toBeLessThanOrEqual(50);
    expect(out).toContain("sh -c while true;…   running");
    expect(out).toContain("0123456789ab");
  });

  it("leaves a table that fits alone, and cuts no column below 8 characters or its header", () => {
    expect(renderTable(headers, rows, 200)).toBe(renderTable(headers, rows, undefined));
    const narrow = renderTable(headers, rows, 10).split("\n")[1]!;
    expect(narrow).toBe("0123456…   web    sh -c w…   running");
  });
});

describe("renderTable", () => {
  it("pads every column but the last to the widest cell plus three spaces", () => {
    const out = renderTable(
      ["ID", "NAME", "STATUS"],
      [
        ["abc", "web", "running"],
        ["d", "a-long-name", "exited (0)"],
      ],
      undefined,
    );
    expect(out).toBe(
      ["ID    NAME          STATUS", "abc   web           running", "d     a-long-name   exited (0)", ""].join("\n"),
    );
  });

  it("aligns each column at the same offset", () => {
    const lines = renderTable(["A", "B", "C"], [["xxxxx", "y", "z"], ["x", "yyyyyyy", "z"]]).trimEnd().split("\n");
    for (const l of lines) {
      expect(l.indexOf(l.split(/\s+/)[1]!)).toBe(8);
      expect(l.lastIndexOf(l.split(/\s+/)[2]!)).toBe(18);
    }
  });

  it("prints headers alone when there are no rows", () => {
    expect(renderTable(["ID", "NAME"], [])).toBe("ID   NAME\n");
  });

  it("trims trailing blanks when the last cells are empty", () => {
    expect(renderTable(["A", "B"], [["x", ""]])).toBe("A   B\nx\n");
  });

  it("treats missing cells as empty when sizing", () => {
    expect(renderTable(["A", "B", "C"], [["x"]])).toBe("A   B   C\nx\n");
  });
});

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [1, "1 B"],
    [999, "999 B"],
    [1000, "1.0 KB"],
    [1500, "1.5 KB"],
    [1_234_567, "1.2 MB"],
    [5_000_000_000, "5.0 GB"],
    [2e12, "2.0 TB"],
    [3e15, "3000.0 TB"],
  ])("%d -> %s", (n, s) => {
    expect(formatBytes(n)).toBe(s);
  });
});

describe("formatAgo", () => {
  const now = 10_000_000_000;
  it.each([
    [now, "0 seconds ago"],
    [now + 5000, "0 seconds ago"],
    [now - 30_000, "30 seconds ago"],
    [now - 5 * 60_000, "5 minutes ago"],
    [now - 3 * 3_600_000, "3 hours ago"],
    [now - 2 * 86_400_000, "2 days ago"],
  ])("%d -> %s", (ms, s) => {
    expect(formatAgo(ms, now)).toBe(s);
  });
});

describe("renderJson", () => {
  it("prints bigints as numbers, indented, with a trailing newline", () => {
    const out = renderJson({ size: 123n, nested: [{ pid: 7n }], name: "x" });
    expect(out).toBe('{\n  "size": 123,\n  "nested": [\n    {\n      "pid": 7\n    }\n  ],\n  "name": "x"\n}\n');
    expect(JSON.parse(out)).toEqual({ size: 123, nested: [{ pid: 7 }], name: "x" });
  });

  it("handles a top-level bigint and plain values", () => {
    expect(renderJson(5n)).toBe("5\n");
    expect(renderJson([1, "a", null])).toBe('[\n  1,\n  "a",\n  null\n]\n');
  });
});
