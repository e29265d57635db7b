import { describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { MEDIA } from "../oci.js";
import { sha256 } from "../testing.js";
import { MANIFEST_ACCEPT, usesPlainHttp, verifyManifest } from "./client.js";

describe("MANIFEST_ACCEPT", () => {
  it("asks for OCI and Docker schema 2 indexes and manifests, and nothing else", () => {
    expect(MANIFEST_ACCEPT.split(", ").sort()).toEqual(
      [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].sort(),
    );
  });
});

describe("usesPlainHttp", () => {
  it("is true for loopback registries only, unless a registry is listed as insecure", () => {
    for (const d of ["localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000"]) expect(usesPlainHttp(d), d).toBe(true);
    for (const d of ["docker.io", "ghcr.io", "128.0.0.1:5000", "10.0.0.5:5000", "localhost.example.com"]) expect(usesPlainHttp(d), d).toBe(false);
    expect(usesPlainHttp("10.0.0.5:5000", ["10.0.0.5:5000"])).toBe(true);
    expect(usesPlainHttp("10.0.0.5:5000", ["10.0.0.5"])).toBe(true);
    expect(usesPlainHttp("10.0.0.5:5000", ["10.0.0.5:5001"])).toBe(false);
  });
});

describe("verifyManifest", () => {
  const bytes = Buffer.from('{"schemaVersion":2}');
  const digest = sha256(bytes);
  const other = sha256(Buffer.from("other"));

  it("returns the digest when it matches what was asked for and what the registry claims", () => {
    expect(verifyManifest(bytes, {}, "m")).toBe(digest);
    expect(verifyManifest(bytes, { requested: digest, header: digest }, "m")).toBe(digest);
    // A tag asks for no digest.
    expect(verifyManifest(bytes, { requested: "latest", header: null }, "m")).toBe(digest);
  });

  it("fails on content that is not what was asked for, or not what the registry says it is", () => {
    for (const expected of [{ requested: other }, { header: other }]) {
      const err = (() => {
        try {
          verifyManifest(bytes, expected, "manifest of demo:1");
        } catch (e) {
          return e;
        }
      })();
      expect(isContainerError(err, "invalidArgument")).toBe(true);
      expect((err as Error).message).toBe(`manifest of demo:1 failed verification: content hashes to ${digest}, expected ${other}`);
    }
  });
});
