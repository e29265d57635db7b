import { describe, expect, it } from "vitest";
import type { VmConfig } from "../types.js";
import { escapeOptionValue, kernelCommandLine, qemuArgs, STATE_FILES, vsockBackendArgs } from "./command-line.js";

function config(overrides: Partial<VmConfig> = {}): VmConfig {
  return {
    id: "vm1",
    arch: "x86_64",
    cpus: 2,
    memoryMiB: 512,
    kernelPath: "/assets/vmlinux",
    kernelArgs: ["vminitd.debug=1"],
    disks: [
      { path: "/assets/initfs.ext4", format: "raw", readOnly: true },
      { path: "/data/c1/rootfs.ext4", format: "raw", readOnly: false },
    ],
    stateDir: "/run/c1",
    consoleLogPath: "/data/c1/boot.log",
    ...overrides,
  };
}

/** The value following each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ""] : []));
}

function value(args: string[], flag: string): string {
  const v = values(args, flag);
  expect(v, `${flag} once`).toHaveLength(1);
  return v[0]!;
}

describe("kernelCommandLine", () => {
  it("puts the console, root and init first and the caller's args last", () => {
    const line = kernelCommandLine("x86_64", ["vminitd.poweroff=1"]);
    const words = line.split(" ");
    expect(words[0]).toBe("console=ttyS0");
    expect(words).toEqual(
      expect.arrayContaining(["reboot=t", "panic=-1", "root=/dev/vda", "ro", "rootfstype=ext4", "init=/sbin/vminitd"]),
    );
    expect(words.at(-1)).toBe("vminitd.poweroff=1");
  });

  it("uses the PL011 console on aarch64 and no x86 timer flags", () => {
    const line = kernelCommandLine("aarch64", []);
    expect(line.startsWith("console=ttyAMA0 ")).toBe(true);
    expect(line).not.toContain("tsc=");
  });

  it("skips APIC timer calibration only under TCG, and SMP patching only with one vCPU", () => {
    const tcg1 = kernelCommandLine("x86_64", [], { accel: "tcg", cpus: 1 }).split(" ");
    expect(tcg1).toEqual(expect.arrayContaining(["noapictimer", "noreplace-smp", "pci=off"]));
    const kvm2 = kernelCommandLine("x86_64", [], { accel: "kvm", cpus: 2 }).split(" ");
    expect(kvm2).not.toContain("noapictimer");
    expect(kvm2).not.toContain("noreplace-smp");
  });
});

describe("qemuArgs on x86_64", () => {
  it("builds a microvm with no defaults, no reboot and the accelerator's CPU", () => {
    const tcg = qemuArgs({ config: config(), accel: "tcg" });
    expect(value(tcg, "-M")).toBe("microvm,acpi=off,x-option-roms=off,pit=on,pic=on,rtc=on,isa-serial=on,dump-guest-core=off,memory-backend=mem");
    expect(value(tcg, "-accel")).toBe("tcg");
    expect(value(tcg, "-cpu")).toBe("max");
    for (const flag of ["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]) expect(tcg).toContain(flag);
    const kvm = qemuArgs({ config: config(), accel: "kvm" });
    expect(value(kvm, "-accel")).toBe("kvm");
    expect(value(kvm, "-cpu")).toBe("host");
  });

  it("sizes CPUs and memory, with shared memfd RAM for vhost-user", () => {
    const args = qemuArgs({ config: config(), accel: "tcg" });
    expect(value(args, "-smp")).toBe("2");
    expect(value(args, "-m")).toBe("512M");
    expect(value(args, "-object")).toBe("memory-backend-memfd,id=mem,size=512M,share=on");
  });

  it("boots the kernel directly with the full command line", () => {
    const args = qemuArgs({ config: config(), accel: "tcg" });
    expect(value(args, "-kernel")).toBe("/assets/vmlinux");
    expect(value(args, "-append")).toBe(kernelCommandLine("x86_64", ["vminitd.debug=1"], { accel: "tcg", cpus: 2 }));
  });

  it("appends the serial console to the log file", () => {
    const args = qemuArgs({ config: config(), accel: "tcg" });
    expect(values(args, "-chardev")).toContain("file,id=con,path=/data/c1/boot.log,append=on");
    expect(value(args, "-serial")).toBe("chardev:con");
  });

  it("attaches disks in order as virtio-mmio block devices, the init filesystem read-only", () => {
    const args = qemuArgs({ config: config(), accel: "tcg" });
    const drives = values(args, "-drive");
    expect(drives).toHaveLength(2);
    expect(drives[0]).toContain("id=disk0,file=/assets/initfs.ext4,format=raw");
    expect(drives[0]).toContain("readonly=on");
    expect(drives[1]).toContain("id=disk1,file=/data/c1/rootfs.ext4,format=raw");
    expect(drives[1]).not.toContain("readonly");
    // A full host disk fails the guest's writes instead of pausing the VM.
    expect(drives[1]).toContain("werror=report,rerror=report");
    for (const d of drives) expect(d).toMatch(/^if=none,/);
    expect(values(args, "-device")).toEqual([
      "virtio-blk-device,drive=disk0",
      "virtio-blk-device,drive=disk1",
      "vhost-user-vsock-device,chardev=vsock",
    ]);
  });

  it("escapes commas in paths", () => {
    const args = qemuArgs({
      config: config({ consoleLogPath: "/tmp/a,b/boot.log", disks: [{ path: "/x,y.img", format: "qcow2", readOnly: true }] }),
      accel: "tcg",
    });
    expect(values(args, "-chardev")).toContain("file,id=con,path=/tmp/a,,b/boot.log,append=on");
    expect(value(args, "-drive")).toContain("file=/x,,y.img,format=qcow2");
    expect(escapeOptionValue("a,,b")).toBe("a,,,,b");
  });

  it("connects the vsock device to the backend and QMP to fd 3, with relative socket paths", () => {
    const args = qemuArgs({ config: config(), accel: "tcg" });
    const chardevs = values(args, "-chardev");
    expect(chardevs).toContain(`socket,id=vsock,path=${STATE_FILES.vhostSocket}`);
    expect(chardevs).toContain("socket,id=qmp,fd=3");
    expect(values(args, "-device")).toContain("vhost-user-vsock-device,chardev=vsock");
    expect(value(args, "-mon")).toBe("chardev=qmp,mode=control");
    expect(value(args, "-pidfile")).toBe(STATE_FILES.qemuPid);
    expect(STATE_FILES.vhostSocket.startsWith("/")).toBe(false);
  });
});

describe("qemuArgs on aarch64", () => {
  it("uses the virt machine with the best GIC, -cpu max under TCG and the PL011 console", () => {
    const args = qemuArgs({ config: config({ arch: "aarch64", kernelPath: "/assets/Image" }), accel: "tcg" });
    expect(value(args, "-M")).toMatch(/^virt,gic-version=max,.*memory-backend=mem/);
    expect(value(args, "-cpu")).toMatch(/^max/);
    expect(value(args, "-append").startsWith("console=ttyAMA0 ")).toBe(true);
    // virt enumerates virtio-mmio devices in reverse: the init filesystem must come last to be vda.
    expect(values(args, "-device")).toEqual([
      "vhost-user-vsock-device,chardev=vsock",
      "virtio-blk-device,drive=disk1",
      "virtio-blk-device,drive=disk0",
    ]);
  });
});

describe("vsockBackendArgs", () => {
  it("runs one device for guest CID 3 with sockets relative to the state dir", () => {
    expect(vsockBackendArgs()).toEqual([
      "--vm",
      `guest-cid=3,socket=${STATE_FILES.vhostSocket},uds-path=${STATE_FILES.vsockSocket}`,
    ]);
  });
});
