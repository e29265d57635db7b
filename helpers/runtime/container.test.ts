import { describe, expect, it } from "vitest";
import { BootstrapRequest } from "../agent/gen/agent.js";
import { GUEST_ROOTFS, GUEST_ROSETTA, guestSetup } from "./container.js";

const rootfs = { source: "/dev/vdb", target: GUEST_ROOTFS, fstype: "ext4", options: [] };

describe("guestSetup (the bootstrap request's mounts and binfmt rules)", () => {
  it("mounts only the rootfs and registers nothing for an image of the guest's architecture", () => {
    expect(guestSetup(undefined)).toEqual({ mounts: [rootfs], binfmt: [] });
  });

  it("registers qemu-user from the init filesystem", () => {
    expect(guestSetup({ kind: "qemu-user", imageArch: "arm64", interpreter: "/usr/libexec/qemu-aarch64" })).toEqual({
      mounts: [rootfs],
      binfmt: [{ imageArch: "arm64", interpreter: "/usr/libexec/qemu-aarch64" }],
    });
  });

  it("mounts the Rosetta share read-only first, then registers Rosetta from it", () => {
    const setup = guestSetup({ kind: "rosetta" });
    expect(setup.mounts).toEqual([{ source: "rosetta", target: GUEST_ROSETTA, fstype: "virtiofs", options: ["ro"] }, rootfs]);
    expect(GUEST_ROSETTA.startsWith("/run/")).toBe(true); // the guest root is read-only; /run is a tmpfs
    expect(setup.binfmt).toEqual([{ rosetta: true, interpreter: "/run/rosetta/rosetta" }]);
    // On the wire the rule is the oneof's rosetta arm, with no image_arch.
    const wire = BootstrapRequest.decode(BootstrapRequest.encode(BootstrapRequest.fromPartial(setup)).finish());
    expect(wire.binfmt).toEqual([{ imageArch: undefined, rosetta: true, interpreter: "/run/rosetta/rosetta" }]);
    expect(wire.mounts[0]).toMatchObject({ source: "rosetta", fstype: "virtiofs" });
  });
});
