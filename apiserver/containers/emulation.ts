// How a container runs an image of some architecture: natively, in a guest
// of the host's architecture under a user-mode emulator (Rosetta or
// qemu-user), or in an emulated guest of the image's own. Pure: the manager
// acts on the answer.
import type { GuestArch } from "../../helpers/hypervisor/types.js";
import type { EmulationMode } from "../../lib/config/index.js";

export type Emulation = "native" | "rosetta" | "qemu-user" | "vm";

export interface EmulationQuery {
  /** The architecture of this host's guests. */
  host: GuestArch;
  /** The image's (--platform), as a guest architecture. */
  image: GuestArch;
  /** config.toml's [emulation] mode. */
  mode: EmulationMode;
  /** Whether the hypervisor backend can share Rosetta (hypervisor/index.ts offersRosetta). */
  rosetta: boolean;
}

export function chooseEmulation(q: EmulationQuery): Emulation {
  if (q.image === q.host) return "native";
  if (q.mode === "vm") return "vm";
  // Rosetta runs only x86_64 binaries on aarch64, and there it is the faster.
  if (q.rosetta && q.host === "aarch64" && q.image === "x86_64") return "rosetta";
  return "qemu-user";
}
