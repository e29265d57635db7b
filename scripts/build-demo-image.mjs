#!/usr/bin/env zx
// Builds the demo image: Debian's static busybox with its applets, a minimal
// /etc, made with independent tools (umoci builds an OCI layout, skopeo
// exports it) so the image store is tested against archives it did not write.
//
//   node scripts/build-demo-image.mjs [--force] [--arch arm64 --busybox PATH]
//
// Output, in <repo>/build/demo/ (amd64, the host's busybox):
//   demo-docker.tar  `docker save` format (skopeo docker-archive), RepoTags demo:latest
//   demo-oci.tar     OCI layout (skopeo oci-archive), ref.name "demo:latest"
//   cache-key        sha256 of the busybox binary and this script; a match skips the build
// With --arch arm64, in <repo>/build/demo-arm64/, the same named demo-arm64,
// from the arm64 busybox at --busybox (Debian's busybox-static:arm64).
//
// Needs umoci, skopeo and busybox-static; runs as root (or umoci --rootless).
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { $, argv } from "zx";

$.verbose = false;

const scriptPath = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(scriptPath), "..");
const ARCH = argv.arch ?? "amd64";
const NAME = ARCH === "amd64" ? "demo" : `demo-${ARCH}`;
const outDir = path.join(repoRoot, "build", NAME);
// The host's busybox lists the applets: the same Debian version in every architecture.
const HOST_BUSYBOX = "/bin/busybox";
const BUSYBOX = argv.busybox ?? HOST_BUSYBOX;
const ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const say = (msg) => process.stderr.write(`build-demo-image: ${msg}\n`);

for (const tool of ["umoci", "skopeo"]) {
  if ((await $`command -v ${tool}`.nothrow()).exitCode !== 0) {
    say(`${tool} not found (apt-get install umoci skopeo busybox-static)`);
    process.exit(1);
  }
}
if (!existsSync(BUSYBOX)) {
  say(`${BUSYBOX} not found (apt-get install busybox-static)`);
  process.exit(1);
}

const key = createHash("sha256")
  .update(await fs.readFile(BUSYBOX))
  .update(await fs.readFile(scriptPath))
  .digest("hex");
const keyFile = path.join(outDir, "cache-key");
if (!argv.force && existsSync(keyFile) && (await fs.readFile(keyFile, "utf8")).trim() === key) {
  say(`up to date (${path.relative(repoRoot, outDir)})`);
  process.exit(0);
}

const started = Date.now();
const work = await fs.mkdtemp(path.join(os.tmpdir(), "demo-image-"));
try {
  const layout = path.join(work, "layout");
  const bundle = path.join(work, "bundle");
  const image = `${layout}:latest`;
  const rootless = process.getuid?.() === 0 ? [] : ["--rootless"];

  say("creating the OCI layout (umoci)");
  await $`umoci init --layout ${layout}`;
  await $`umoci new --image ${image}`;
  await $`umoci unpack ${rootless} --image ${image} ${bundle}`;

  say("populating the root filesystem");
  const rootfs = path.join(bundle, "rootfs");
  const bin = path.join(rootfs, "bin");
  await fs.mkdir(bin, { recursive: true });
  await fs.copyFile(BUSYBOX, path.join(bin, "busybox"));
  await fs.chmod(path.join(bin, "busybox"), 0o755);
  const applets = (await $`${HOST_BUSYBOX} --list`).stdout.split("\n").map((s) => s.trim());
  for (const applet of applets) {
    if (applet === "" || applet === "busybox" || applet.includes("/")) continue;
    await fs.symlink("busybox", path.join(bin, applet));
  }
  const etc = path.join(rootfs, "etc");
  await fs.mkdir(etc, { recursive: true });
  await fs.writeFile(path.join(etc, "passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  await fs.writeFile(path.join(etc, "group"), "root:x:0:\nnogroup:x:65534:\n");
  for (const [dir, mode] of [["tmp", 0o1777], ["root", 0o700]]) {
    await fs.mkdir(path.join(rootfs, dir), { recursive: true });
    await fs.chmod(path.join(rootfs, dir), mode);
  }

  say("committing the layer and config (umoci)");
  await $`umoci repack --image ${image} ${bundle}`;
  await $`umoci config --image ${image} --config.cmd=sh --config.env=${ENV_PATH} --config.workingdir=/ --os linux --architecture ${ARCH}`;

  say("exporting docker-archive and oci-archive (skopeo)");
  const staged = path.join(work, "out");
  await fs.mkdir(staged);
  await $`skopeo --insecure-policy copy --quiet oci:${image} docker-archive:${path.join(staged, `${NAME}-docker.tar`)}:${NAME}:latest`;
  await $`skopeo --insecure-policy copy --quiet oci:${image} oci-archive:${path.join(staged, `${NAME}-oci.tar`)}:${NAME}:latest`;

  // Replace the output whole; the cache-key goes in last, so it only ever
  // sits beside complete archives.
  await fs.mkdir(path.dirname(outDir), { recursive: true });
  await fs.rm(outDir, { recursive: true, force: true });
  await fs.cp(staged, outDir, { recursive: true });
  await fs.writeFile(keyFile, key + "\n");
  say(`built ${path.relative(repoRoot, outDir)} (${applets.length} applets) in ${((Date.now() - started) / 1000).toFixed(1)}s`);
} finally {
  await fs.rm(work, { recursive: true, force: true });
}
