#!/usr/bin/env node
// Builds the macOS backend into build/vz/ (CONTAINER_VZ_DIR overrides):
//   virtualization-bridge.node  the addon (`napi build --release`, @napi-rs/cli)
//   node                        a copy of this Node, signed with entitlements.plist
// The VM host process runs under that Node: Virtualization.framework checks
// the entitlement of the process, not of the addon. Signing uses
// $CODESIGN_IDENTITY (with the hardened runtime), else ad hoc ("-").
// Elsewhere than macOS it stops at once: unsupported on this platform.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const out = process.env.CONTAINER_VZ_DIR || join(root, "build", "vz");

if (process.platform !== "darwin") {
  console.error(
    `virtualization-bridge: unsupported on this platform (${process.platform}/${process.arch}): ` +
      "Virtualization.framework exists only on macOS; this host uses the QEMU backend.",
  );
  process.exit(1);
}

const run = (cmd, args) => execFileSync(cmd, args, { stdio: "inherit" });
const identity = process.env.CODESIGN_IDENTITY || "-";
// The hardened runtime only with a real identity; ad hoc signatures skip it.
const runtime = identity === "-" ? [] : ["--options", "runtime", "--timestamp"];

console.log("==> napi build --release (virtualization-bridge)");
mkdirSync(out, { recursive: true });
const addon = join(out, "virtualization-bridge.node");
rmSync(addon, { force: true });
// The binary name comes from this folder's package.json ("napi").
execFileSync(join(root, "node_modules", ".bin", "napi"), ["build", "--release", "--manifest-path", join(here, "Cargo.toml"), "--output-dir", out], { cwd: here, stdio: "inherit" });
rmSync(join(out, "index.d.ts"), { force: true }); // the types live in helpers/hypervisor/vz/addon.ts
run("codesign", ["--force", "--sign", identity, ...runtime, addon]);

const node = join(out, "node");
rmSync(node, { force: true });
copyFileSync(process.execPath, node);
run("codesign", ["--force", "--sign", identity, ...runtime, "--entitlements", join(here, "entitlements.plist"), node]);

run("codesign", ["--verify", "--strict", addon]);
run("codesign", ["--verify", "--strict", node]);
const entitlements = execFileSync("codesign", ["-d", "--entitlements", "-", "--xml", node]).toString();
if (!entitlements.includes("com.apple.security.virtualization")) {
  console.error(`${node} lacks com.apple.security.virtualization after signing`);
  process.exit(1);
}
console.log(`==> ${addon}\n==> ${node} (signed ${identity === "-" ? "ad hoc" : `by ${identity}`}, virtualization entitlement)`);
