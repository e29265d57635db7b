import { describe, expect, it } from "vitest";
import { isContainerError } from "../../lib/errors/index.js";
import { digestQuery, fullString, normalizeReference, parseReference } from "./reference.js";

const DIGEST = `sha256:${"ab".repeat(32)}`;

describe("parseReference", () => {
  it.each([
    ["demo", "demo:latest", "docker.io/library/demo:latest"],
    ["demo:1.0", "demo:1.0", "docker.io/library/demo:1.0"],
    ["library/demo", "demo:latest", "docker.io/library/demo:latest"],
    ["docker.io/library/demo:latest", "demo:latest", "docker.io/library/demo:latest"],
    ["index.docker.io/library/demo", "demo:latest", "docker.io/library/demo:latest"],
    ["user/app", "user/app:latest", "docker.io/user/app:latest"],
    ["docker.io/user/app:v2", "user/app:v2", "docker.io/user/app:v2"],
    ["docker.io/library/a/b", "library/a/b:latest", "docker.io/library/a/b:latest"],
    ["ghcr.io/org/app:1", "ghcr.io/org/app:1", "ghcr.io/org/app:1"],
    ["localhost/app", "localhost/app:latest", "localhost/app:latest"],
    ["localhost:5000/app:x_y-z.1", "localhost:5000/app:x_y-z.1", "localhost:5000/app:x_y-z.1"],
    ["Registry.Example/app", "Registry.Example/app:latest", "Registry.Example/app:latest"],
    [`demo@${DIGEST}`, `demo@${DIGEST}`, `docker.io/library/demo@${DIGEST}`],
    [`demo:1@${DIGEST}`, `demo:1@${DIGEST}`, `docker.io/library/demo:1@${DIGEST}`],
    ["a__b-c---d/e.f_g", "a__b-c---d/e.f_g:latest", "docker.io/a__b-c---d/e.f_g:latest"],
  ])("%s -> %s", (input, familiar, full) => {
    expect(normalizeReference(input)).toBe(familiar);
    expect(fullString(parseReference(input))).toBe(full);
  });

  it.each([
    ["", "invalidArgument"],
    ["Demo", "invalidArgument"],
    ["demo:", "invalidArgument"],
    ["demo:-x", "invalidArgument"],
    [`demo:${"x".repeat(129)}`, "invalidArgument"],
    ["demo:a/b", "invalidArgument"],
    ["-demo", "invalidArgument"],
    ["demo_", "invalidArgument"],
    ["a///b", "invalidArgument"],
    ["/demo", "invalidArgument"],
    ["a.b_c/d", "invalidArgument"], // the dot makes "a.b_c" a registry host, and hosts have no underscores
    ["demo@sha256:123", "invalidArgument"],
    ["demo@sha512:" + "a".repeat(128), "unsupported"],
    ["ab".repeat(32), "invalidArgument"],
    [`${"a".repeat(250)}/b`, "invalidArgument"],
  ])("rejects %j (%s)", (input, code) => {
    let error: unknown;
    try {
      parseReference(input);
    } catch (err) {
      error = err;
    }
    expect(isContainerError(error)).toBe(true);
    expect((error as { code: string }).code).toBe(code);
  });

  it("hints at lowercase names", () => {
    try {
      parseReference("MyApp");
      expect.unreachable();
    } catch (err) {
      expect((err as { hint?: string }).hint).toMatch(/lowercase/);
    }
  });
});

describe("digestQuery", () => {
  it("recognises digests and prefixes", () => {
    expect(digestQuery(DIGEST)).toEqual({ hex: DIGEST.slice(7), fallback: false });
    expect(digestQuery("sha256:abc")).toEqual({ hex: "abc", fallback: false });
    expect(digestQuery(DIGEST.slice(7))).toEqual({ hex: DIGEST.slice(7), fallback: false });
    expect(digestQuery("abab12")).toEqual({ hex: "abab12", fallback: true });
    expect(digestQuery("abc")).toBeUndefined();
    expect(digestQuery("demo")).toBeUndefined();
  });
});
