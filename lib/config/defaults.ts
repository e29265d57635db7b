// The built-in configuration: what every key is when config.toml does not set it.
import type { Config } from "./types.js";

export const DEFAULT_CPUS = 1;
export const MAX_CPUS = 64;
export const DEFAULT_MEMORY_MIB = 1024;
export const MIN_MEMORY_MIB = 64;
export const DEFAULT_REGISTRY_DOMAIN = "docker.io";
export const DEFAULT_SUBNET = "192.168.64.0/24";

export function defaultConfig(): Config {
  return {
    container: { cpus: DEFAULT_CPUS, memoryMiB: DEFAULT_MEMORY_MIB },
    kernel: {},
    registry: { domain: DEFAULT_REGISTRY_DOMAIN },
    network: { subnet: DEFAULT_SUBNET },
    vminit: { logLevel: "info" },
    emulation: { mode: "user" },
  };
}
