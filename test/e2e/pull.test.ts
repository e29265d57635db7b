// `container image pull` end to end: a real registry (Debian's
// docker-registry) holding the demo image pushed by skopeo, pulled by the CLI
// through the apiserver into an isolated store, then run in a VM.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, createTestEnv, type TestEnv } from "../support/env.js";
import { startRegistry, type Registry } from "../support/registry.js";

const DEMO_OCI = join(ROOT, "build", "demo", "demo-oci.tar");
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const HOST_ARCH = process.arch === "arm64" ? "arm64" : "amd64";

let t: TestEnv;
let registry: Registry;
let secured: Registry | undefined;
let dockerConfig: string;

beforeAll(async () => {
  registry = await startRegistry();
  await registry.push(`oci-archive:${DEMO_OCI}`, "demo:latest");
  t = await createTestEnv({ loadDemo: false });
  // The CLI reads credentials from here: nothing of the developer's own.
  dockerConfig = await mkdtemp("/tmp/docker-config-");
  t.env.DOCKER_CONFIG = dockerConfig;
});

afterAll(async () => {
  await t?.close();
  await registry?.close();
  await secured?.close();
  if (dockerConfig) await rm(dockerConfig, { recursive: true, force: true });
});

interface Listed {
  reference: string;
  digest: string;
  platforms: string[];
}

async function images(): Promise<Listed[]> {
  const r = await t.cli(["image", "list", "--format", "json"]);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Listed[];
}

describe("container image pull", () => {
  let digest = "";

  it("pulls by tag with a line per layer, and lists the image", async () => {
    const ref = `${registry.host}/demo:latest`;
    const r = await t.cli(["image", "pull", ref]);
    expect(r.stderr).toMatch(/^[0-9a-f]{12}: done 1\.1 MB\n$/);
    expect(r.code).toBe(0);
    const m = /^Pulled image: (.+)\nDigest: (sha256:[0-9a-f]{64})\n$/.exec(r.stdout);
    expect(m?.[1]).toBe(ref);
    digest = m![2]!;
    expect(await images()).toContainEqual({ reference: ref, digest, platforms: [`linux/${HOST_ARCH}`], size: expect.any(Number) });
  });

  it("runs the pulled image", async () => {
    const r = await t.cli(["run", "--rm", `${registry.host}/demo:latest`, "echo", "pulled"]);
    expect(r).toMatchObject({ code: 0, stdout: "pulled\n" });
  });

  it("pulls by digest, reusing the layers already present", async () => {
    const ref = `${registry.host}/demo@${digest}`;
    const r = await t.cli(["image", "pull", ref]);
    expect(r).toMatchObject({ code: 0, stdout: `Pulled image: ${ref}\nDigest: ${digest}\n` });
    expect(r.stderr).toMatch(/^[0-9a-f]{12}: already present\n$/);
  });

  it("picks the host's platform from an index, and says which platforms it lacks", async () => {
    // An index over the demo manifest, put beside it under the tag `multi`.
    const manifest = await fetch(`http://${registry.host}/v2/demo/manifests/latest`, { headers: { accept: OCI_MANIFEST } });
    const size = (await manifest.arrayBuffer()).byteLength;
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest, size, platform: { os: "linux", architecture: HOST_ARCH } }] };
    const put = await fetch(`http://${registry.host}/v2/demo/manifests/multi`, { method: "PUT", headers: { "content-type": OCI_INDEX }, body: JSON.stringify(index) });
    expect(put.status).toBe(201);

    const r = await t.cli(["image", "pull", `${registry.host}/demo:multi`]);
    expect(r.code).toBe(0);
    expect((await images()).find((i) => i.reference === `${registry.host}/demo:multi`)?.platforms).toEqual([`linux/${HOST_ARCH}`]);
    const other = await t.cli(["image", "pull", "--platform", "linux/s390x", `${registry.host}/demo:multi`]);
    expect(other.code).toBe(1);
    expect(other.stderr.split("\n")[0]).toBe(`Error: ${registry.host}/demo:multi has no image for linux/s390x`);
  });

  it("fails with one line for a tag the registry does not have", async () => {
    const r = await t.cli(["image", "pull", `${registry.host}/demo:nope`]);
    expect(r).toMatchObject({ code: 1, stdout: "", stderr: `Error: ${registry.host}/demo:nope not found (manifest unknown)\n` });
  });

  it("uses the credentials in $DOCKER_CONFIG/config.json for a registry with Basic auth", async () => {
    secured = await startRegistry({ user: "alice", password: "s3cret" });
    await secured.push(`oci-archive:${DEMO_OCI}`, "private/demo:1");
    const ref = `${secured.host}/private/demo:1`;

    const anonymous = await t.cli(["image", "pull", ref]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr.split("\n")[0]).toBe(`Error: pull access denied for ${secured.host}/private/demo: the repository does not exist or needs credentials`);

    const auth = (s: string): string => Buffer.from(s).toString("base64");
    await writeFile(join(dockerConfig, "config.json"), JSON.stringify({ auths: { [`http://${secured.host}`]: { auth: auth("alice:wrong") } } }));
    const wrong = await t.cli(["image", "pull", ref]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe(`Error: pull access denied for ${secured.host}/private/demo: the repository does not exist or the credentials do not allow it\n`);

    await writeFile(join(dockerConfig, "config.json"), JSON.stringify({ auths: { [secured.host]: { auth: auth("alice:s3cret") } } }));
    const r = await t.cli(["image", "pull", ref]);
    expect(r).toMatchObject({ code: 0, stdout: `Pulled image: ${ref}\nDigest: ${digest}\n` });
    // Same layer as the demo pulled from the other registry: nothing to download.
    expect(r.stderr).toMatch(/already present/);
  });
});
