// Registries end to end, through the CLI and the apiserver, against Debian's
// docker-registry: a multi-arch index assembled and pushed by skopeo (and
// the arm64 image run in an emulated guest), `registry login|logout`, TLS
// with a CA of the test's own (openssl) on a non-loopback address, plain
// http there only with --insecure-registry, a full disk mid-pull, and a
// hostile layer. One VM boot (the arm64 run).
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guestAssets } from "../../helpers/hypervisor/index.js";
import { digestOf } from "../../helpers/image/content/index.js";
import { makeOciArchive, makeTar } from "../../helpers/image/testing.js";
import { ROOT, createTestEnv, type RunResult, type TestEnv } from "../support/env.js";
import { startRegistry, type Registry } from "../support/registry.js";

const run = promisify(execFile);
const DEMO_OCI = join(ROOT, "build", "demo", "demo-oci.tar");
const ARM64_OCI = join(ROOT, "build", "demo-arm64", "demo-arm64-oci.tar");
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const arm64Guest = guestAssets("aarch64");
const arm64Missing = [ARM64_OCI, arm64Guest.kernelPath, arm64Guest.initfsPath].find((p) => !existsSync(p));
/** A local address that is not loopback: TLS is verified there, plain http needs --insecure-registry. */
const LAN_ADDRESS = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === "IPv4" && !a.internal)?.address;

let t: TestEnv;
let registry: Registry;
let scratch: string;
const closers: (() => Promise<void>)[] = [];

interface Listed {
  reference: string;
  digest: string;
  platforms: string[];
}

async function images(env: TestEnv = t): Promise<Listed[]> {
  const r = await env.cli(["image", "list", "--format", "json"]);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Listed[];
}

/** Fails unless the command failed with exit `code` and one `Error:` line (and maybe a hint) matching `message`. */
function expectOneLineError(r: RunResult, message: RegExp, code = 1): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).toMatch(/^Error: [^\n]+\n(Hint: [^\n]+\n)?$/);
  expect(r.stderr.split("\n")[0]).toMatch(message);
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

beforeAll(async () => {
  registry = await startRegistry();
  await registry.push(`oci-archive:${DEMO_OCI}`, "demo:latest");
  scratch = await mkdtemp("/tmp/images-registry-");
  t = await createTestEnv({ loadDemo: false });
  // Credentials of the test's own: nothing of the developer's.
  t.env.DOCKER_CONFIG = join(scratch, "docker");
  t.env.XDG_CONFIG_HOME = join(scratch, "xdg");
});

afterAll(async () => {
  await t?.close();
  for (const close of closers.reverse()) await close();
  await registry?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("a multi-arch index", () => {
  const ref = (): string => `${registry?.host}/busybox:multi`;

  it.skipIf(!existsSync(ARM64_OCI))("is pushed by skopeo from an OCI layout holding both demo images", async () => {
    // Both images into one layout, then an index over them, written here and copied whole by skopeo.
    const layout = join(scratch, "layout");
    for (const [archive, tag] of [[DEMO_OCI, "amd64"], [ARM64_OCI, "arm64"]] as const) {
      await run("skopeo", ["--insecure-policy", "copy", "--quiet", `oci-archive:${archive}`, `oci:${layout}:${tag}`]);
    }
    const top = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as { manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] };
    const manifests = ["amd64", "arm64"].map((architecture) => {
      const { mediaType, digest, size } = top.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === architecture)!;
      return { mediaType, digest, size, platform: { os: "linux", architecture } };
    });
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
    await writeFile(join(layout, "blobs", "sha256", digestOf(index).slice(7)), index);
    top.manifests.push({ mediaType: OCI_INDEX, digest: digestOf(index), size: index.length, annotations: { "org.opencontainers.image.ref.name": "multi" } });
    await writeFile(join(layout, "index.json"), JSON.stringify(top));
    await registry.push(`oci:${layout}:multi`, "busybox:multi", ["--multi-arch", "all"]);
  });

  it.skipIf(!existsSync(ARM64_OCI))("pulls the host's platform, then --platform linux/arm64 beside it; --arch finds it present", async () => {
    const host = await t.cli(["image", "pull", ref()]);
    expect(host.code, host.stderr).toBe(0);
    expect((await images()).find((i) => i.reference === ref())?.platforms).toEqual(["linux/amd64"]);
    const arm = await t.cli(["image", "pull", "--platform", "linux/arm64", ref()]);
    expect(arm.code, arm.stderr).toBe(0);
    expect((await images()).find((i) => i.reference === ref())?.platforms).toEqual(["linux/amd64", "linux/arm64"]);
    const again = await t.cli(["image", "pull", "--arch", "arm64", "--max-concurrent-downloads", "1", ref()]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/^([0-9a-f]{12}: already present\n)+$/);
    expectOneLineError(await t.cli(["image", "pull", "--platform", "linux/arm64", "--arch", "amd64", ref()]), /^Error: --platform cannot be combined with --os or --arch$/);
  });

  it.skipIf(process.arch !== "x64" || arm64Missing !== undefined)(`runs the arm64 image in an emulated guest${arm64Missing ? ` (skipped: ${arm64Missing} is missing)` : ""}`, async () => {
    const r = await t.cli(["run", "--rm", "--platform", "linux/arm64", ref(), "uname", "-m"], { timeoutMs: 300_000 });
    expect(r).toMatchObject({ code: 0, stdout: "aarch64\n" });
  });
});

describe("registry login and logout", () => {
  it("checks the password, keeps it in a 0600 file that pull reads, and forgets it", async () => {
    const secured = await startRegistry({ user: "alice", password: "s3cret" });
    closers.push(() => secured.close());
    await secured.push(`oci-archive:${DEMO_OCI}`, "private/demo:1");
    const ref = `${secured.host}/private/demo:1`;

    const wrong = await t.cli(["registry", "login", "-u", "alice", "--password-stdin", secured.host], { input: "nope\n" });
    expectOneLineError(wrong, new RegExp(`^Error: registry ${esc(secured.host)} rejected the credentials of alice$`));
    const noTerminal = await t.cli(["registry", "login", "-u", "alice", secured.host]);
    expectOneLineError(noTerminal, /^Error: no terminal to ask for the password on$/);

    const login = await t.cli(["registry", "login", "-u", "alice", "--password-stdin", `http://${secured.host}/`], { input: "s3cret\n" });
    const file = join(scratch, "xdg", "container", "auth.json");
    expect(login).toMatchObject({ code: 0, stdout: `Login Succeeded (credentials for ${secured.host} saved in ${file})\n` });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const pulled = await t.cli(["image", "pull", ref]);
    expect(pulled.code, pulled.stderr).toBe(0);

    expect(await t.cli(["registry", "logout", secured.host])).toMatchObject({ code: 0, stdout: `Removed login credentials for ${secured.host}\n` });
    expect(await t.cli(["registry", "logout", secured.host])).toMatchObject({ code: 0, stdout: `Not logged in to ${secured.host}\n` });
    expectOneLineError(await t.cli(["image", "pull", ref]), /^Error: pull access denied for .* needs credentials$/);
  });
});

describe.skipIf(LAN_ADDRESS === undefined)(`TLS on a non-loopback address (${LAN_ADDRESS ?? "skipped: this host has none"})`, () => {
  let tls: Registry;

  beforeAll(async () => {
    tls = await startRegistry({ address: LAN_ADDRESS!, tls: true, user: "bob", password: "pw" });
    closers.push(() => tls.close());
    await tls.push(`oci-archive:${DEMO_OCI}`, "demo:tls");
  });

  it("fails with a one-line certificate error while the CA is not trusted, and is not downgraded to http", async () => {
    const ref = `${tls.host}/demo:tls`;
    const login = await t.cli(["registry", "login", "-u", "bob", "--password-stdin", tls.host], { input: "pw" });
    expectOneLineError(login, new RegExp(`^Error: cannot reach registry ${esc(tls.host)}: TLS failed: `));
    const pull = await t.cli(["image", "pull", ref]);
    expectOneLineError(pull, new RegExp(`^Error: cannot reach registry ${esc(tls.host)}: TLS failed: (unable to verify|self[- ]signed)`));
    expect(pull.stderr).toMatch(/\nHint: trust its CA \(NODE_EXTRA_CA_CERTS=/);
    // --insecure-registry means plain http, which a TLS registry refuses: never TLS without verification.
    expectOneLineError(await t.cli(["image", "pull", "--insecure-registry", tls.host, ref]), new RegExp(`^Error: registry ${esc(tls.host)} refused`));
    expect((await images()).map((i) => i.reference)).not.toContain(ref);
  });

  it("logs in and pulls once the CA is trusted (NODE_EXTRA_CA_CERTS of the CLI and the service)", async () => {
    const trusting = await createTestEnv({ start: false });
    closers.push(() => trusting.close());
    Object.assign(trusting.env, { NODE_EXTRA_CA_CERTS: tls.ca!, XDG_CONFIG_HOME: join(scratch, "xdg-tls"), DOCKER_CONFIG: join(scratch, "docker") });
    expect((await trusting.cli(["system", "start"])).code).toBe(0);
    const login = await trusting.cli(["registry", "login", "-u", "bob", "--password-stdin", tls.host], { input: "pw" });
    expect(login.code, login.stderr).toBe(0);
    const pull = await trusting.cli(["image", "pull", `${tls.host}/demo:tls`]);
    expect(pull.code, pull.stderr).toBe(0);
  });

  it("speaks plain http to a non-loopback registry only when it is named with --insecure-registry", async () => {
    const plain = await startRegistry({ address: LAN_ADDRESS! });
    closers.push(() => plain.close());
    await plain.push(`oci-archive:${DEMO_OCI}`, "demo:plain");
    const ref = `${plain.host}/demo:plain`;
    expectOneLineError(await t.cli(["image", "pull", ref]), new RegExp(`^Error: cannot reach registry ${esc(plain.host)}: TLS failed: `));
    const r = await t.cli(["image", "pull", "--insecure-registry", plain.host, ref]);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe("bad input", () => {
  it("refuses a hostile layer at run with one line, and the store stays usable", async () => {
    for (const [name, layer, message] of [
      ["dotdot", makeTar([{ name: "../escape", data: "x" }]), /has a "\.\." component$/],
      ["through", makeTar([{ name: "evil", type: "symlink", linkname: "/" }, { name: "evil/etc/passwd", data: "x" }]), /would be written through the symlink "evil"$/],
    ] as const) {
      const archive = join(scratch, `${name}.tar`);
      await writeFile(archive, (await makeOciArchive({ layers: [await layer], gzip: true })).tar);
      await registry.push(`oci-archive:${archive}`, `hostile/${name}:1`);
      const ref = `${registry.host}/hostile/${name}:1`;
      expect((await t.cli(["image", "pull", ref])).code).toBe(0);
      expectOneLineError(await t.cli(["run", "--rm", ref, "true"]), message, 125);
      expect((await t.cli(["image", "rm", ref])).code).toBe(0);
    }
    expect(existsSync("/escape")).toBe(false);
    const r = await t.cli(["image", "pull", `${registry.host}/demo:latest`]);
    expect(r.code, r.stderr).toBe(0);
  });

  it.skipIf(process.getuid?.() !== 0)("a full disk mid-pull is one line; with room again the pull goes on and succeeds", async () => {
    const small = await createTestEnv({ start: false });
    const content = join(small.dir, "data", "content");
    await mkdir(content, { recursive: true });
    // The content store on a 512 KiB tmpfs: the demo's 1.1 MB layer cannot fit.
    await run("mount", ["-t", "tmpfs", "-o", "size=512k", "tmpfs", content]);
    closers.push(async () => {
      await small.cli(["system", "stop"]);
      await run("umount", [content]);
      await small.close();
    });
    expect((await small.cli(["system", "start"])).code).toBe(0);
    const ref = `${registry.host}/demo:latest`;
    const full = await small.cli(["image", "pull", ref]);
    expectOneLineError(full, /^Error: no space left on the device of .* for blob sha256:[0-9a-f]{64}$/);
    expect(await images(small)).toEqual([]);
    await run("mount", ["-o", "remount,size=16m", content]);
    const again = await small.cli(["image", "pull", ref]);
    expect(again.code, again.stderr).toBe(0);
    expect((await images(small)).map((i) => i.reference)).toEqual([ref]);
  });
});
