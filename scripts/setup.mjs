#!/usr/bin/env zx
// README command (1): installs every system package and tool, builds
// everything (cached by inputs), puts `container` on the PATH, starts the
// service, loads the demo image and runs it. Safe to re-run.
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { $, argv } from "zx";

$.verbose = false;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);
const step = (msg) => console.log(`==> ${msg}`);
const started = Date.now();

// Debian packages: QEMU, the kernel source and compilers, the image tools the
// tests use as independent peers (skopeo, umoci, docker-registry,
// apache2-utils for the registry's bcrypt htpasswd file, openssl for its TLS
// certificates, zstd for zstd layers, debootstrap for the Debian image the
// image e2e test builds once and caches), e2fsprogs, and qemu-user-static
// (the guest's emulator for images of another architecture).
const PACKAGES = [
  "qemu-system-x86", "qemu-system-arm", "qemu-utils", "linux-source-6.1", "build-essential", "flex", "bison", "bc",
  "libelf-dev", "libssl-dev", "gcc-aarch64-linux-gnu", "skopeo", "umoci", "busybox-static", "docker-registry",
  "apache2-utils", "openssl", "zstd", "debootstrap", "protobuf-compiler", "e2fsprogs", "xz-utils", "tmux", "util-linux", "qemu-user-static",
];
const VHOST_DEVICE_VSOCK_VERSION = "0.3.0";

async function installPackages() {
  const missing = [];
  for (const p of PACKAGES) {
    const r = await $`dpkg-query -W -f=${"${Status}"} ${p}`.nothrow();
    if (!r.stdout.includes("install ok installed")) missing.push(p);
  }
  if (missing.length === 0) return step("system packages present");
  step(`installing ${missing.join(" ")}`);
  const sudo = process.getuid() === 0 ? [] : ["sudo"];
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await $({ env })`${sudo} apt-get update -q`;
  await $({ env })`${sudo} apt-get install -y -q --no-install-recommends ${missing}`;
}

async function installVsockBackend() {
  // The user-space vhost-user-vsock backend QEMU talks to (no vhost_vsock module needed).
  const bin = path.join(root, ".tools", "bin", "vhost-device-vsock");
  if (existsSync(bin) && (await $`${bin} --version`.nothrow()).stdout.includes(VHOST_DEVICE_VSOCK_VERSION)) {
    return step("vhost-device-vsock present");
  }
  step(`building vhost-device-vsock ${VHOST_DEVICE_VSOCK_VERSION} from crates.io`);
  await $`cargo install --locked --quiet --root ${path.join(root, ".tools")} vhost-device-vsock --version ${VHOST_DEVICE_VSOCK_VERSION}`;
}

// Debian's arm64 busybox-static, for the arm64 demo image the --platform
// tests run on an emulated arm64 guest.
async function fetchArm64Busybox() {
  const bin = path.join(root, ".tools", "arm64", "busybox");
  if (existsSync(bin)) return bin;
  step("fetching busybox-static:arm64");
  const sudo = process.getuid() === 0 ? [] : ["sudo"];
  if (!(await $`dpkg --print-foreign-architectures`).stdout.split("\n").includes("arm64")) {
    await $`${sudo} dpkg --add-architecture arm64`;
    await $`${sudo} apt-get update -q`;
  }
  const work = await fs.mkdtemp(path.join(os.tmpdir(), "busybox-arm64-"));
  // apt downloads as its own _apt user.
  await fs.chmod(work, 0o777);
  try {
    await $({ cwd: work })`apt-get download -q busybox-static:arm64`;
    const [deb] = (await fs.readdir(work)).filter((f) => f.endsWith(".deb"));
    await $`dpkg-deb -x ${path.join(work, deb)} ${path.join(work, "x")}`;
    await fs.mkdir(path.dirname(bin), { recursive: true });
    await fs.copyFile(path.join(work, "x", "bin", "busybox"), bin);
    return bin;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

async function linkCli() {
  const target = path.join(root, "bin", "container");
  const dir = process.getuid() === 0 ? "/usr/local/bin" : path.join(process.env.HOME, ".local", "bin");
  await fs.mkdir(dir, { recursive: true });
  const link = path.join(dir, "container");
  await fs.rm(link, { force: true });
  await fs.symlink(target, link);
  step(`container -> ${link}`);
}

async function addMacTarget() {
  // Lets the tests type-check the macOS backend's Rust glue on this host
  // (no macOS SDK needed to check, only to link). Optional: without it the
  // tests say the check was skipped.
  const installed = await $`rustup target list --installed`.nothrow();
  if (installed.stdout.includes("aarch64-apple-darwin")) return step("rust target aarch64-apple-darwin present");
  step("adding rust target aarch64-apple-darwin");
  const r = await $`rustup target add aarch64-apple-darwin`.nothrow();
  if (r.exitCode !== 0) step(`could not add aarch64-apple-darwin (the macOS glue will not be type-checked): ${r.stderr.trim()}`);
}

await installPackages();
await installVsockBackend();
await addMacTarget();
step("building the host (TypeScript)");
await $`npx tsc -p tsconfig.json`;
step("building vminitd");
await $({ stdio: "inherit" })`npx zx scripts/build-vminitd.mjs`;
step("building the init filesystems");
await $({ stdio: "inherit" })`npx zx scripts/build-initfs.mjs`;
step("building the guest kernels (cached)");
await $({ stdio: "inherit" })`npx zx kernel-config/build.mjs`;
step("building the demo image");
await $({ stdio: "inherit" })`npx zx scripts/build-demo-image.mjs`;
await $({ stdio: "inherit" })`npx zx scripts/build-demo-image.mjs --arch arm64 --busybox ${await fetchArm64Busybox()}`;
await linkCli();

if (argv["no-demo"]) process.exit(0);
const container = path.join(root, "bin", "container");
step("starting the container service");
await $({ stdio: "inherit" })`${container} system start`;
await $({ stdio: "inherit" })`${container} image load -i build/demo/demo-docker.tar`;
step("container run --rm demo echo hello");
await $({ stdio: "inherit" })`${container} run --rm demo echo hello`;
step(`set-up done in ${Math.round((Date.now() - started) / 1000)} s`);
