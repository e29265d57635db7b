import { describe, expect, it } from "vitest";
import { ContainerError } from "../../../lib/errors/index.js";
import { expectContainerError } from "../../../lib/errors/testing.js";
import { fromAddonError, fromEnvelope, loadAddon } from "./addon.js";

describe("vz addon", () => {
  it("is unsupported off macOS, saying so", () => {
    const err = expectContainerError(() => loadAddon({}, "linux"), "unsupported");
    expect(err.message).toContain("unsupported on this platform (linux)");
  });

  it("is unavailable on macOS until it is built", () => {
    const err = expectContainerError(() => loadAddon({ CONTAINER_VZ_DIR: "/nonexistent" }, "darwin"), "unavailable");
    expect(err.hint).toContain("virtualization-bridge/build.mjs");
  });

  it("rebuilds error envelopes as ContainerErrors", () => {
    const e = fromEnvelope('{"code":"notFound","message":"no kernel","hint":"run setup"}');
    expect(e).toMatchObject({ code: "notFound", message: "no kernel", hint: "run setup" });
    expect(fromEnvelope('{"code":"exists","message":"m"}').hint).toBeUndefined();
    expect(fromEnvelope('{"code":"bogus","message":"m"}')).toMatchObject({ code: "internal" });
    expect(fromEnvelope("plain text")).toMatchObject({ code: "internal", message: "plain text" });
    const thrown = new Error('{"code":"unsupported","message":"qcow2"}');
    expect(fromAddonError(thrown)).toMatchObject({ code: "unsupported", message: "qcow2", cause: thrown });
    const ours = new ContainerError("timeout", "t");
    expect(fromAddonError(ours)).toBe(ours);
  });
});
