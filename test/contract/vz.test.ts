// The hypervisor contract against the Virtualization.framework backend. Runs
// only on a Mac with the backend built (README, "macOS"); everywhere else
// the whole suite is skipped, saying why.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "vitest";
import { guestAssets } from "../../helpers/hypervisor/index.js";
import { ADDON_FILE, SIGNED_NODE_FILE, vzBuildDir } from "../../helpers/hypervisor/vz/addon.js";
import { createVzHypervisor, defaultHostMain } from "../../helpers/hypervisor/vz/index.js";
import { hypervisorContract, missingAsset } from "./hypervisor.contract.js";

const assets = guestAssets("aarch64");

function skipReason(): string | undefined {
  if (process.platform !== "darwin" || process.arch !== "arm64") {
    return `needs macOS on Apple Silicon (this is ${process.platform}/${process.arch})`;
  }
  const built = [join(vzBuildDir(), ADDON_FILE), join(vzBuildDir(), SIGNED_NODE_FILE), defaultHostMain()].find((p) => !existsSync(p));
  if (built) return `${built} is missing: run \`npm run build && node native/virtualization-bridge/build.mjs\``;
  const asset = missingAsset(assets);
  return asset ? `${asset} is missing: copy the aarch64 guest assets into build/ (README, macOS)` : undefined;
}

const reason = skipReason();

describe.skipIf(reason === undefined)("vz contract (skipped)", () => {
  it.skip(`skipped: ${reason}`, () => undefined);
});

describe.skipIf(reason !== undefined)("vz", () => {
  hypervisorContract("vz", () => createVzHypervisor(), assets, {
    report: (line) => process.stderr.write(`[vz] ${line}\n`),
  });
});
