// `container image tag|inspect|save|load|push|rm|prune` and `system df` end
// to end, through the CLI and the apiserver, with real outside readers and
// writers: skopeo reads the saved archives and what was pushed to Debian's
// docker-registry. No VM boots here: the container that holds an image is a
// stopped one, its record written before the apiserver (re)starts and finds it.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, type TestEnv } from "../support/env.js";
import { startRegistry, type Registry } from "../support/registry.js";

const run = promisify(execFile);

let t: TestEnv;
let registry: Registry;
let secured: Registry | undefined;
let scratch: string;
let demoDigest = "";

interface Listed {
  reference: string;
  digest: string;
}

async function images(): Promise<Listed[]> {
  const r = await t.cli(["image", "list", "--format", "json"]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as Listed[]).map(({ reference, digest }) => ({ reference, digest }));
}

async function blobCount(): Promise<number> {
  const dir = join(t.dir, "data", "content", "blobs", "sha256");
  return existsSync(dir) ? (await readdir(dir)).length : 0;
}

/** Fails unless the command failed with exit 1 and one `Error:` line (and maybe a hint). */
function expectOneLineError(r: { code: number; stdout: string; stderr: string }, message: string): void {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  expect(r.stderr).toMatch(/^Error: [^\n]+\n(Hint: [^\n]+\n)?$/);
  expect(r.stderr.split("\n")[0]).toBe(`Error: ${message}`);
}

beforeAll(async () => {
  registry = await startRegistry();
  t = await createTestEnv();
  t.env.DOCKER_CONFIG = scratch = await mkdtemp("/tmp/images-e2e-");
  demoDigest = (await images()).find((i) => i.reference === "demo:latest")!.digest;
});

afterAll(async () => {
  await t?.close();
  await registry?.close();
  await secured?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("container image", () => {
  it("tags and inspects", async () => {
    const name = `${registry.host}/e2e/demo:v1`;
    expect(await t.cli(["image", "tag", "demo", name])).toMatchObject({ code: 0, stdout: "" });
    expect(await images()).toEqual([
      { reference: name, digest: demoDigest },
      { reference: "demo:latest", digest: demoDigest },
    ]);
    const r = await t.cli(["image", "inspect", name, "demo"]);
    expect(r.code).toBe(0);
    const [detail, other] = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(detail).toMatchObject({ reference: name, digest: demoDigest, manifestDigest: demoDigest, platform: expect.stringMatching(/^linux\//), size: expect.any(Number) });
    expect(detail!.config).toMatchObject({ cmd: ["sh"] });
    expect(detail!.layers).toEqual([{ digest: expect.stringMatching(/^sha256:/), mediaType: expect.stringMatching(/layer/), size: expect.any(Number) }]);
    expect(other).toMatchObject({ reference: "demo:latest", digest: demoDigest });

    expectOneLineError(await t.cli(["image", "inspect", "nope"]), "image nope not found");
    expectOneLineError(await t.cli(["image", "tag", "demo", "Bad:1"]), 'invalid image reference "Bad:1": bad name component "Bad"');
  });

  it("saves both formats, which skopeo reads and load brings back with the same digest", async () => {
    const oci = join(scratch, "demo-oci.tar");
    const docker = join(scratch, "demo-docker.tar");
    expect(await t.cli(["image", "save", "-o", oci, "demo", `${registry.host}/e2e/demo:v1`])).toMatchObject({ code: 0, stdout: "" });
    expect(await t.cli(["image", "save", "--format", "docker", "-o", docker, "demo"])).toMatchObject({ code: 0, stdout: "" });
    const fromOci = JSON.parse((await run("skopeo", ["inspect", `oci-archive:${oci}:v1`])).stdout) as { Digest: string };
    expect(fromOci.Digest).toBe(demoDigest);
    const fromDocker = JSON.parse((await run("skopeo", ["inspect", "--config", `docker-archive:${docker}`])).stdout) as { config: { Cmd: string[] } };
    expect(fromDocker.config.Cmd).toEqual(["sh"]);

    expect(await t.cli(["image", "rm", "demo", `${registry.host}/e2e/demo:v1`])).toMatchObject({
      code: 0,
      stdout: `Untagged: demo:latest\nUntagged: ${registry.host}/e2e/demo:v1\nDeleted: ${demoDigest}\n`,
    });
    expect(await blobCount()).toBe(0);
    expect(await t.cli(["image", "load", "-i", docker])).toMatchObject({ code: 0, stdout: "Loaded image: demo:latest\n" });
    expect(await t.cli(["image", "load", "-i", oci])).toMatchObject({ code: 0, stdout: `Loaded image: demo:latest\nLoaded image: ${registry.host}/e2e/demo:v1\n` });
    expect((await images()).map((i) => i.digest)).toEqual([demoDigest, demoDigest]);

    expectOneLineError(await t.cli(["image", "save", "--format", "zip", "-o", join(scratch, "x.tar"), "demo"]), 'unknown archive format "zip"');
    expectOneLineError(await t.cli(["image", "save", "-o", join(scratch, "x.tar"), "demo", "nope"]), "image nope not found");
    expect((await readdir(scratch)).filter((f) => f.startsWith("x.tar"))).toEqual([]);
  });

  it("pushes to a registry, and pulls back by digest", async () => {
    const name = `${registry.host}/e2e/demo:v1`;
    const r = await t.cli(["image", "push", name]);
    expect(r).toMatchObject({ code: 0, stdout: `Pushed image: ${name}\nDigest: ${demoDigest}\n` });
    expect(r.stderr).toMatch(/^([0-9a-f]{12}: pushed [^\n]+\n){2}$/);
    const remote = JSON.parse((await run("skopeo", ["inspect", "--tls-verify=false", `docker://${name}`])).stdout) as { Digest: string };
    expect(remote.Digest).toBe(demoDigest);
    // Everything is there already the second time.
    expect((await t.cli(["image", "push", name])).stderr).toMatch(/^([0-9a-f]{12}: already on the registry\n){2}$/);

    expect((await t.cli(["image", "rm", name])).code).toBe(0);
    const byDigest = `${registry.host}/e2e/demo@${demoDigest}`;
    expect(await t.cli(["image", "pull", byDigest])).toMatchObject({ code: 0, stdout: `Pulled image: ${byDigest}\nDigest: ${demoDigest}\n` });

    expectOneLineError(await t.cli(["image", "push", `${registry.host}/e2e/nothere:1`]), `image ${registry.host}/e2e/nothere:1 not found`);
  });

  it("pushes with the docker config's credentials to a registry that needs them", async () => {
    secured = await startRegistry({ user: "bob", password: "pw" });
    const name = `${secured.host}/private/demo:1`;
    expect((await t.cli(["image", "tag", "demo", name])).code).toBe(0);
    const denied = await t.cli(["image", "push", name]);
    expect(denied.code).toBe(1);
    expect(denied.stderr.split("\n")[0]).toMatch(new RegExp(`^Error: push access denied for ${secured.host}/private/demo: `));
    await writeFile(join(scratch, "config.json"), JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from("bob:pw").toString("base64") } } }));
    expect(await t.cli(["image", "push", name])).toMatchObject({ code: 0, stdout: `Pushed image: ${name}\nDigest: ${demoDigest}\n` });
    expect((await t.cli(["image", "rm", name])).code).toBe(0);
  });

  it("keeps an image a container uses; prune and df account for it", async () => {
    // A stopped container of the demo image, found by the apiserver when it starts.
    const id = "e".repeat(64);
    const bundle = join(t.dir, "data", "containers", id);
    await mkdir(bundle, { recursive: true });
    const record = { id, name: "holder", image: "demo:latest", imageDigest: demoDigest, args: ["sh"], env: [], cwd: "/", interactive: false, autoRemove: false, cpus: 1, memoryMiB: 256, labels: {}, readOnly: false, createdAt: Date.now(), state: "stopped", exitCode: 0 };
    await writeFile(join(bundle, "container.json"), JSON.stringify(record));
    expect((await t.cli(["system", "stop"])).code).toBe(0);
    expect((await t.cli(["system", "start"])).code).toBe(0);

    // Three names of one image: the last one is refused while the container exists.
    expect((await t.cli(["image", "tag", "demo", `${registry.host}/e2e/demo:v1`])).code).toBe(0);
    expect(await t.cli(["image", "rm", "demo", `${registry.host}/e2e/demo@${demoDigest}`])).toMatchObject({ code: 0 });
    expectOneLineError(await t.cli(["image", "rm", `${registry.host}/e2e/demo:v1`]), `image ${registry.host}/e2e/demo:v1 is in use by container holder`);
    expectOneLineError(await t.cli(["image", "rm", "nope", `${registry.host}/e2e/demo:v1`]), "image nope not found");
    expect(await t.cli(["image", "rm", "-f", `${registry.host}/e2e/demo:v1`])).toMatchObject({ code: 0, stdout: `Untagged: ${registry.host}/e2e/demo:v1\n` });
    expect(await images()).toEqual([{ reference: demoDigest, digest: demoDigest }]);

    const df = await t.cli(["system", "df", "--format", "json"]);
    expect(df.code).toBe(0);
    const usage = JSON.parse(df.stdout) as { totals: { type: string; total: number; active: number; size: number; reclaimable: number }[] };
    expect(usage.totals.map((u) => [u.type, u.total, u.active])).toEqual([
      ["images", 1, 1],
      ["snapshots", 0, 0],
      ["containers", 1, 0],
    ]);
    expect(usage.totals[0]).toMatchObject({ reclaimable: 0 });
    expect(usage.totals[0]!.size).toBeGreaterThan(1_000_000);
    const table = await t.cli(["system", "df"]);
    expect(table.stdout.split("\n")[0]).toMatch(/^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/);

    expect(await t.cli(["image", "prune", "-a"])).toMatchObject({ code: 0, stdout: "Total reclaimed space: 0 B\n" });
    expect(await blobCount()).toBeGreaterThan(0);
    expect((await t.cli(["rm", "holder"])).code).toBe(0);
    const pruned = await t.cli(["image", "prune"]);
    expect(pruned.code).toBe(0);
    expect(pruned.stdout).toMatch(new RegExp(`^Deleted: ${demoDigest}\nTotal reclaimed space: [\\d.]+ MB\n$`));
    expect(await blobCount()).toBe(0);
    expect(await images()).toEqual([]);
  });
});
