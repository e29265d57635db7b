// The shape of the user's configuration (`config.toml`) once merged over the
// built-in defaults. Types only: the loader and the defaults are in this
// folder's index.ts and defaults.ts.

/** vminitd's log level in the guest. */
export type VminitLogLevel = "info" | "debug";

/**
 * How an image of another architecture (`--platform`) runs: "user", in a
 * guest of the host's own architecture with the image's binaries run by an
 * emulator registered with binfmt_misc (qemu-user on Linux, Rosetta on
 * macOS); "vm", in a whole guest of the image's architecture, emulated.
 */
export type EmulationMode = "user" | "vm";

/** The VM size a container gets when `run` does not say (`--cpus`, `--memory`). */
export interface ContainerDefaults {
  cpus: number;
  memoryMiB: number;
}

export interface Config {
  container: ContainerDefaults;
  kernel: {
    /** The guest kernel to boot instead of the built one; undefined means the built one. */
    path?: string;
  };
  registry: {
    /** The registry host (`host[:port]`) of references that name none. */
    domain: string;
  };
  network: {
    /** The IPv4 subnet containers will get addresses from. */
    subnet: string;
  };
  vminit: {
    logLevel: VminitLogLevel;
  };
  emulation: {
    mode: EmulationMode;
  };
}
