import { describe, expect, it } from "vitest";
import { keyLines, lineOf } from "./locate.js";

const lineIn = (text: string, ...path: string[]): number | undefined => lineOf(keyLines(text), path);

describe("keyLines", () => {
  it("finds table headers and the keys under them", () => {
    const text = ["# comment", "", "[container]", "cpus = 2", "  memory = '1G' # trailing", "", "[ network ]", "subnet = \"10.0.0.0/24\""].join("\n");
    expect(lineIn(text, "container")).toBe(3);
    expect(lineIn(text, "container", "cpus")).toBe(4);
    expect(lineIn(text, "container", "memory")).toBe(5);
    expect(lineIn(text, "network")).toBe(7);
    expect(lineIn(text, "network", "subnet")).toBe(8);
  });

  it("finds dotted keys and dotted table headers, recording the tables they imply", () => {
    const text = ["registry.domain = 'x.io'", "", "[vminit . extra]", "a.b = 1"].join("\n");
    expect(lineIn(text, "registry")).toBe(1);
    expect(lineIn(text, "registry", "domain")).toBe(1);
    expect(lineIn(text, "vminit")).toBe(3);
    expect(lineIn(text, "vminit", "extra", "a", "b")).toBe(4);
  });

  it("finds keys inside inline tables, nested and spread over lines", () => {
    const text = ["container = { cpus = 2, memory = \"1G\" }", "kernel = {", "  path = '/k',", "  deep = { x = 1 }", "}", "after = 1"].join("\n");
    expect(lineIn(text, "container", "cpus")).toBe(1);
    expect(lineIn(text, "container", "memory")).toBe(1);
    expect(lineIn(text, "kernel")).toBe(2);
    expect(lineIn(text, "kernel", "path")).toBe(3);
    expect(lineIn(text, "kernel", "deep", "x")).toBe(4);
    expect(lineIn(text, "after")).toBe(6);
  });

  it("is not fooled by strings, arrays and comments that look like keys", () => {
    const text = [
      'a = """',
      "[container]",
      'cpus = 9 \\"""',
      '"""',
      "b = ['[x]', \"c = 1\", [",
      "  { d = 2 }, # e = 3",
      "]]",
      "l = '''",
      "f = 4'''",
      "[container]",
      "cpus = 1",
    ].join("\n");
    expect(lineIn(text, "a")).toBe(1);
    expect(lineIn(text, "b")).toBe(5);
    expect(lineIn(text, "l")).toBe(8);
    expect(lineIn(text, "container")).toBe(10);
    expect(lineIn(text, "container", "cpus")).toBe(11);
    expect(lineIn(text, "x")).toBeUndefined();
    expect(lineIn(text, "e")).toBeUndefined();
  });

  it("reads quoted keys, with escapes and dots inside", () => {
    const text = ['"container".\'cpus\' = 2', '[ "a.b" ]', '"k\\u0065y" = 1', '"" = 2'].join("\n");
    expect(lineIn(text, "container", "cpus")).toBe(1);
    expect(lineIn(text, "a.b")).toBe(2);
    expect(lineIn(text, "a")).toBeUndefined();
    expect(lineIn(text, "a.b", "key")).toBe(3);
    expect(lineIn(text, "a.b", "")).toBe(4);
  });

  it("handles arrays of tables, CRLF line ends and date-times with a space", () => {
    const text = ["[[servers]]", "when = 1979-05-27 07:32:00Z", "[[servers]]", "[kernel]", "path = '/k'"].join("\r\n");
    expect(lineIn(text, "servers")).toBe(1);
    expect(lineIn(text, "servers", "when")).toBe(2);
    expect(lineIn(text, "kernel", "path")).toBe(5);
  });

  it("falls back to the nearest enclosing key, the first definition winning", () => {
    const text = ["[container]", "cpus = 1"].join("\n");
    expect(lineIn(text, "container", "memory")).toBe(1);
    expect(lineIn(text, "nowhere")).toBeUndefined();
  });
});
