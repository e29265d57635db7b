import { describe, expect, it } from "vitest";
import { chooseEmulation, type EmulationQuery } from "./emulation.js";

const mac: EmulationQuery = { host: "aarch64", image: "x86_64", mode: "user", rosetta: true };

describe("chooseEmulation", () => {
  it("runs amd64 images through Rosetta on a backend that offers it, in user mode, on arm64", () => {
    expect(chooseEmulation(mac)).toBe("rosetta");
  });

  it("keeps qemu-user where Rosetta is not offered or cannot help", () => {
    expect(chooseEmulation({ ...mac, rosetta: false })).toBe("qemu-user");
    // Rosetta runs x86_64 binaries on aarch64, not the other way round.
    expect(chooseEmulation({ host: "x86_64", image: "aarch64", mode: "user", rosetta: true })).toBe("qemu-user");
    expect(chooseEmulation({ host: "x86_64", image: "aarch64", mode: "user", rosetta: false })).toBe("qemu-user");
  });

  it("boots an emulated guest in vm mode, Rosetta or not", () => {
    expect(chooseEmulation({ ...mac, mode: "vm" })).toBe("vm");
    expect(chooseEmulation({ host: "x86_64", image: "aarch64", mode: "vm", rosetta: false })).toBe("vm");
  });

  it("emulates nothing for an image of the host's architecture", () => {
    expect(chooseEmulation({ ...mac, image: "aarch64" })).toBe("native");
    expect(chooseEmulation({ host: "x86_64", image: "x86_64", mode: "vm", rosetta: false })).toBe("native");
  });
});
