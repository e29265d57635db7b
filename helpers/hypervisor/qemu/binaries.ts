// Locating the host programs the QEMU backend runs.
import { homedir } from "node:os";
import { join } from "node:path";
import { ContainerError } from "../../../lib/errors/index.js";
import { repoRoot } from "../../../lib/paths/index.js";
import type { GuestArch } from "../types.js";
import { findExecutable } from "./child.js";
import { qemuBinaryName } from "./command-line.js";

const QEMU_PACKAGE: Record<GuestArch, string> = { x86_64: "qemu-system-x86", aarch64: "qemu-system-arm" };

export function resolveQemuBinary(arch: GuestArch, override?: string, env: NodeJS.ProcessEnv = process.env): string {
  const name = override ?? qemuBinaryName(arch);
  const found = findExecutable(name, [], env);
  if (!found) {
    throw new ContainerError("unavailable", `${name} not found`, {
      hint: `install QEMU (Debian/Ubuntu: apt-get install ${QEMU_PACKAGE[arch]})`,
    });
  }
  return found;
}

/** vhost-device-vsock: option, $CONTAINER_VHOST_VSOCK, PATH, cargo's bin dir, the repo's .tools/bin. */
export function resolveVsockBackend(override?: string, env: NodeJS.ProcessEnv = process.env): string {
  const name = override ?? env.CONTAINER_VHOST_VSOCK ?? "vhost-device-vsock";
  const cargoBin = join(env.CARGO_HOME || join(homedir(), ".cargo"), "bin");
  const found = findExecutable(name, [cargoBin, join(repoRoot(), ".tools", "bin")], env);
  if (!found) {
    throw new ContainerError("unavailable", `${name} (the vsock device backend) not found`, {
      hint: "run `npm run setup`, or `cargo install vhost-device-vsock`",
    });
  }
  return found;
}
