// The guest kernel fragments must keep every feature the runtime and the
// containers it runs rely on. build.mjs checks the fragments survive Kconfig;
// this checks the fragments themselves ask for the right things.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));

function parseFragment(arch: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const raw of readFileSync(join(here, `${arch}.config`), "utf8").split("\n")) {
    const line = raw.trim();
    const set = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (set?.[1] && set[2] !== undefined) values.set(set[1], set[2]);
    const unset = /^# (CONFIG_\w+) is not set$/.exec(line);
    if (unset?.[1]) values.set(unset[1], "n");
  }
  return values;
}

const common = [
  // virtio transports and devices
  "VIRTIO_MENU", "VIRTIO_MMIO", "PCI", "VIRTIO_PCI",
  "BLK_DEV", "VIRTIO_BLK", "NETDEVICES", "NET_CORE", "VIRTIO_NET", "VIRTIO_CONSOLE",
  "HW_RANDOM", "HW_RANDOM_VIRTIO",
  // vsock, networking
  "NET", "UNIX", "INET", "PACKET", "VSOCKETS", "VIRTIO_VSOCKETS",
  // filesystems
  "BLOCK", "EXT4_FS", "EXT4_FS_POSIX_ACL", "EXT4_FS_SECURITY", "OVERLAY_FS",
  "FUSE_FS", "VIRTIO_FS", "PROC_FS", "SYSFS", "DEVTMPFS", "DEVTMPFS_MOUNT",
  "TMPFS", "TMPFS_POSIX_ACL", "TMPFS_XATTR",
  "BINFMT_ELF", "BINFMT_SCRIPT", "BINFMT_MISC",
  // cgroup v2 controllers, namespaces, seccomp
  "CGROUPS", "MEMCG", "CGROUP_PIDS", "CGROUP_SCHED", "FAIR_GROUP_SCHED", "CFS_BANDWIDTH",
  "NAMESPACES", "UTS_NS", "IPC_NS", "PID_NS", "NET_NS",
  "SECCOMP", "SECCOMP_FILTER",
  // syscalls and userspace ABI
  "MULTIUSER", "PRINTK", "EPOLL", "EVENTFD", "SIGNALFD", "TIMERFD", "FUTEX",
  "FILE_LOCKING", "POSIX_TIMERS", "AIO", "INOTIFY_USER", "FHANDLE", "SHMEM",
  "TTY", "UNIX98_PTYS", "SYSVIPC", "POSIX_MQUEUE",
];

const perArch: Record<string, string[]> = {
  x86_64: [
    "64BIT", "SMP", "HYPERVISOR_GUEST", "PARAVIRT", "KVM_GUEST", "PVH",
    "SERIAL_8250", "SERIAL_8250_CONSOLE", "VIRTIO_MMIO_CMDLINE_DEVICES",
  ],
  arm64: [
    "SMP", "ARM_PSCI_FW", "ARM_GIC", "ARM_GIC_V3", "ARM_ARCH_TIMER",
    "ARM_AMBA", "SERIAL_AMBA_PL011", "SERIAL_AMBA_PL011_CONSOLE",
    "OF", "PCI_HOST_GENERIC",
  ],
};

describe.each(Object.keys(perArch))("%s guest kernel fragment", (arch) => {
  const fragment = parseFragment(arch);

  it.each([...common, ...(perArch[arch] ?? [])])("enables CONFIG_%s", (symbol) => {
    expect(fragment.get(`CONFIG_${symbol}`)).toBe("y");
  });

  it("builds no modules", () => {
    expect(fragment.get("CONFIG_MODULES")).not.toBe("y");
    expect(fragment.get("CONFIG_MODULES")).toBe("n");
  });

  it("has no value that is not y, n, a number or a string", () => {
    for (const [symbol, value] of fragment) {
      expect(`${symbol}=${value}`).toMatch(/^CONFIG_\w+=(y|n|-?\d+|0x[0-9a-f]+|".*")$/);
    }
  });
});
