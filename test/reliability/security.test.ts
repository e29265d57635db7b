// The service's attack surface: the API socket only its user can open,
// nothing listening on TCP, nothing of the host a container can see, and
// junk or oversized input to the socket rejected while the service keeps
// serving.
import { execFileSync } from "node:child_process";
import { stat } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContainerConfig, ContainerServiceDefinition } from "../../apiserver/api/gen/apiserver.js";
import { createHttp2Client } from "../../lib/grpc/http2-client.js";
import { expectContainerRejection } from "../../lib/errors/testing.js";
import { createTestEnv, type TestEnv } from "../support/env.js";

let t: TestEnv;
let socket: string;

beforeAll(async () => {
  t = await createTestEnv();
  socket = join(t.env.CONTAINER_RUNTIME_DIR!, "apiserver.sock");
});

afterAll(async () => {
  await t?.close();
});

/** Pids of this installation's processes (apiserver, helpers, QEMU, backends). */
const ourPids = (): Set<string> => new Set(t.processes().map((p) => p.split(/\s+/)[0]!));

describe("the apiserver socket", () => {
  it("is mode 0600 in a 0700 directory", async () => {
    expect((await stat(socket)).mode & 0o777).toBe(0o600);
    expect((await stat(t.env.CONTAINER_RUNTIME_DIR!)).mode & 0o777).toBe(0o700);
  });

  it("refuses another user", () => {
    const probe = `require("net").connect(${JSON.stringify(socket)}).on("connect", () => { console.log("connected"); process.exit(0); }).on("error", (e) => { console.log(e.code); process.exit(0); })`;
    const out = execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e", probe], { encoding: "utf8" });
    expect(out.trim()).toBe("EACCES");
  });
});

describe("network exposure", () => {
  it("nothing of ours listens on TCP, with a container running", async () => {
    expect((await t.cli(["run", "-d", "--name", "net", "demo", "sleep", "600"])).code).toBe(0);
    const pids = ourPids();
    const listeners = execFileSync("ss", ["-Hltnp"], { encoding: "utf8" })
      .split("\n")
      .filter((l) => [...l.matchAll(/pid=(\d+)/g)].some((m) => pids.has(m[1]!)));
    expect(listeners).toEqual([]);
    await t.cli(["rm", "-f", "net"]);
  });
});

describe("what a container reaches", () => {
  it("neither the apiserver's socket nor any host file: only its own disk and the kernel's filesystems", async () => {
    const script = `test -e ${socket} && echo socket; test -e ${t.dir} && echo host-dir; cut -d" " -f3 /proc/mounts | sort -u`;
    const r = await t.cli(["run", "--rm", "demo", "sh", "-c", script]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).not.toContain("socket");
    expect(lines).not.toContain("host-dir");
    // No shared host filesystem (9p, virtiofs, nfs, fuse) is mounted.
    expect(lines.every((fstype) => ["ext4", "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup2"].includes(fstype)), lines.join(" ")).toBe(true);
  });
});

describe("junk on the socket", () => {
  it("survives garbage, a half-open connection and an oversized message, and keeps serving", async () => {
    const garbage = connect(socket, () => garbage.write(Buffer.from("GET / HTTP/1.1\r\n\r\n\x00\xff garbage")));
    garbage.on("error", () => undefined);
    const idle = connect(socket);
    idle.on("error", () => undefined);
    const client = createHttp2Client(ContainerServiceDefinition, socket);
    try {
      // 8 MiB of environment: past the server's 4 MiB receive limit.
      const config = ContainerConfig.fromPartial({ image: "demo", command: ["true"], env: [`X=${"y".repeat(8 << 20)}`], autoRemove: true });
      await expectContainerRejection(client.unary("createContainer", { config }), "resourceExhausted");
      expect((await client.unary("ping", {})).version).toBeTruthy();
    } finally {
      client.close();
      idle.destroy();
      garbage.destroy();
    }
    expect((await t.cli(["run", "--rm", "demo", "echo", "still serving"])).stdout).toBe("still serving\n");
    expect((await t.cli(["ls", "-aq"])).stdout).toBe("");
  });
});

describe("bad input to the CLI changes nothing", () => {
  it.each([
    [["run", "--no-such-flag", "demo"], /unknown option/],
    [["run", "-d", "-i", "demo", "true"], /cannot be used together/],
    [["run", "-e", "=x", "demo", "true"], /invalid environment variable/],
    [["run", "--memory", "1zb", "demo", "true"], /memory/],
    [["run", "--name", "bad name!", "demo", "true"], /invalid container name/],
    [["rm", "nosuch"], /no such container: nosuch/],
    [["stop", "nosuch"], /no such container: nosuch/],
    [["exec", "nosuch", "true"], /no such container: nosuch/],
  ])("%j: one line, non-zero, no state change", async (args, message) => {
    const r = await t.cli(args);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.split("\n").filter((l) => l && !l.startsWith("Hint:") && !l.startsWith("(run with"))).toHaveLength(1);
    expect((await t.cli(["ls", "-aq"])).stdout).toBe("");
  });
});
