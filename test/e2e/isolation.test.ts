// How a container is isolated inside its VM (vminitd's sandbox), seen from
// inside real containers: namespaces, pivot_root, capabilities, masked and
// read-only paths, /dev, --init, --ulimit, --tmpfs, --shm-size, and exec
// joining the container. Each run checks many things: VMs are slow to boot
// under TCG.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, waitFor, type TestEnv } from "../support/env.js";

let t: TestEnv;

beforeAll(async () => {
  t = await createTestEnv();
});

afterAll(async () => {
  await t?.close();
});

/** Docker's default capability set as /proc's hex mask. */
const DOCKER_DEFAULT_CAPS = "00000000a80425fb";

/** Runs a script, returning its output as key=value lines. */
async function probe(flags: string[], script: string): Promise<Record<string, string>> {
  const r = await t.cli(["run", "--rm", ...flags, "demo", "sh", "-c", script]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return Object.fromEntries(r.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

const STATUS = 'for k in CapBnd CapEff NoNewPrivs; do echo "$k=$(grep "^$k:" /proc/self/status | cut -f2)"; done';

describe("the container's own world", () => {
  it("is PID 1 of its own pid namespace, with its rootfs as / and a hostname of its own", async () => {
    const out = await probe(["--name", "iso1"], [
      "echo pid=$$",
      'echo agent="$(ps -o comm | grep -c vminitd)"',
      "echo hostname=$(hostname)",
      'echo mounts="$(cut -d" " -f2 /proc/mounts | sort | tr "\\n" " ")"',
      'echo dev="$(ls /dev | tr "\\n" " ")"',
      "echo masked=$(wc -c < /proc/timer_list)",
      "echo procsys=$(echo x 2>/dev/null > /proc/sys/kernel/domainname && echo writable || echo read-only)",
      'echo cgroup="$(cat /proc/self/cgroup)"',
      'echo lo="$(cat /sys/class/net/lo/operstate)"',
    ].join("; "));
    expect(out.pid).toBe("1");
    // Nothing of the guest (vminitd) shows.
    expect(out.agent).toBe("0");
    expect(out.hostname).toMatch(/^[0-9a-f]{12}$/);
    // The guest's own mounts (its init filesystem, /run) are gone.
    expect(out.mounts).not.toMatch(/\/run\/container|\/dev\/vd/);
    expect(out.mounts).toContain("/proc/sys");
    // A /dev of its own: the harmless devices, not the VM's disks.
    expect(out.dev!.split(" ")).toEqual(expect.arrayContaining(["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"]));
    expect(out.dev).not.toMatch(/vd[a-z]|console|mem\b/);
    expect(out.masked).toBe("0");
    expect(out.procsys).toBe("read-only");
    expect(out.cgroup).toBe("0::/");
    // Loopback is up: a server on 127.0.0.1 is reachable from inside.
    expect(out.lo).toBe("unknown");
  });

  it("has Docker's default capabilities; a user other than root has none in effect", async () => {
    expect(await probe([], STATUS)).toEqual({ CapBnd: DOCKER_DEFAULT_CAPS, CapEff: DOCKER_DEFAULT_CAPS, NoNewPrivs: "0" });
    expect(await probe(["-u", "nobody"], STATUS)).toEqual({ CapBnd: DOCKER_DEFAULT_CAPS, CapEff: "0000000000000000", NoNewPrivs: "0" });
  });

  it("--cap-drop ALL --cap-add NET_RAW keeps only that one; --cap-add SYS_ADMIN adds it", async () => {
    expect(await probe(["--cap-drop", "ALL", "--cap-add", "NET_RAW"], STATUS)).toMatchObject({ CapBnd: "0000000000002000", CapEff: "0000000000002000" });
    const admin = await probe(["--cap-add", "sys_admin", "--cap-drop", "CAP_CHOWN"], STATUS);
    expect(BigInt(`0x${admin.CapEff}`)).toBe((BigInt(`0x${DOCKER_DEFAULT_CAPS}`) | (1n << 21n)) & ~1n);
  });

  it("--security-opt no-new-privileges sets NoNewPrivs", async () => {
    expect(await probe(["--security-opt", "no-new-privileges"], STATUS)).toMatchObject({ NoNewPrivs: "1" });
  });

  it("without CAP_CHOWN, chown fails; with the defaults it works", async () => {
    const r = await t.cli(["run", "--rm", "--cap-drop", "CHOWN", "demo", "sh", "-c", "touch /tmp/f; chown 65534 /tmp/f && echo chowned || echo refused"]);
    expect(r.stdout).toContain("refused");
    const ok = await t.cli(["run", "--rm", "demo", "sh", "-c", "touch /tmp/f; chown 65534 /tmp/f && echo chowned"]);
    expect(ok.stdout).toBe("chowned\n");
  });

  it("--ulimit, --tmpfs and --shm-size", async () => {
    const out = await probe(
      ["--ulimit", "nofile=512:1024", "--ulimit", "core=unlimited", "--tmpfs", "/scratch:size=1m,mode=1777", "--shm-size", "32m"],
      [
        "echo nofile=$(ulimit -n):$(ulimit -Hn)",
        "echo core=$(ulimit -c)",
        "echo scratch=$(grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4)",
        "echo shm=$(grep ' /dev/shm ' /proc/mounts | cut -d' ' -f4)",
        "echo write=$(echo hi > /scratch/x && cat /scratch/x)",
      ].join("; "),
    );
    expect(out.nofile).toBe("512:1024");
    expect(out.core).toBe("unlimited");
    expect(out.scratch).toMatch(/^tmpfs rw,nosuid,nodev,.*size=1024k/);
    expect(out.shm).toMatch(/size=32768k/);
    expect(out.write).toBe("hi");
  });

  it("exec joins the container: its namespaces, hostname, rootfs, capabilities and limits", async () => {
    expect((await t.cli(["run", "-d", "--name", "iso-exec", "--cap-drop", "ALL", "--cap-add", "KILL", "--ulimit", "nofile=100", "demo", "sh", "-c", "echo marker > /tmp/m; sleep 600"])).code).toBe(0);
    await waitFor(async () => (await t.cli(["exec", "iso-exec", "cat", "/tmp/m"])).stdout === "marker\n", 60_000, "the container to write its marker");
    const id = (await t.cli(["inspect", "iso-exec"])).stdout.match(/"id": "([0-9a-f]{12})/)?.[1];
    const r = await t.cli(["exec", "iso-exec", "sh", "-c", `echo $$; hostname; ps -o pid,comm | grep -c sleep; grep CapBnd /proc/self/status | cut -f2; ulimit -n`]);
    const [pid, hostname, sleeps, caps, nofile] = r.stdout.trim().split("\n");
    expect(Number(pid)).toBeGreaterThan(1);
    expect(hostname).toBe(id);
    expect(sleeps).toBe("1");
    expect(caps).toBe("0000000000000020");
    expect(nofile).toBe("100");
    expect((await t.cli(["rm", "-f", "iso-exec"])).code).toBe(0);
  });
});

describe("--init", () => {
  it("reaps orphans: no zombies", async () => {
    // The inner shell exits at once; its sleeps are orphaned to PID 1, the init.
    const script = "sh -c 'sleep 0.3 & sleep 0.2 &'; sleep 2; ps -o stat | grep -c '^Z' || true";
    const withInit = await t.cli(["run", "--rm", "--init", "demo", "sh", "-c", script]);
    expect(withInit).toMatchObject({ code: 0, stdout: "0\n" });
  });

  it("forwards signals: stop ends `sleep` at once with 143, where a bare PID 1 ignores SIGTERM", async () => {
    await t.cli(["run", "-d", "--init", "--name", "init-stop", "demo", "sleep", "600"]);
    const started = Date.now();
    expect((await t.cli(["stop", "-t", "20", "init-stop"])).code).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    const detail = JSON.parse((await t.cli(["inspect", "init-stop"])).stdout) as { summary: { exitCode: number } }[];
    expect(detail[0]?.summary.exitCode).toBe(143);
    await t.cli(["rm", "init-stop"]);
  });

  it("passes the exit status through", async () => {
    expect((await t.cli(["run", "--rm", "--init", "demo", "sh", "-c", "exit 7"])).code).toBe(7);
  });
});

describe("bad isolation flags", () => {
  it.each([
    [["--ulimit", "nofile=a"], 'Error: invalid ulimit "nofile=a"'],
    [["--ulimit", "files=1"], 'Error: unknown ulimit type "files"'],
    [["--cap-add", "NET ADMIN"], 'Error: invalid capability "NET ADMIN"'],
    [["--tmpfs", "/proc"], "Error: tmpfs cannot be mounted on /proc"],
    [["--tmpfs", "scratch"], 'Error: invalid tmpfs "scratch"'],
    [["--shm-size", "lots"], 'Error: invalid shm size "lots"'],
  ])("%j: one line, no container", async (flags, message) => {
    const before = (await t.cli(["ls", "-aq"])).stdout;
    const r = await t.cli(["run", "--rm", ...flags, "demo", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr.split("\n")[0]).toBe(message);
    expect((await t.cli(["ls", "-aq"])).stdout).toBe(before);
  });

  it("an unknown capability the guest refuses fails the run with 125 and leaves nothing with --rm", async () => {
    const before = (await t.cli(["ls", "-aq"])).stdout;
    const r = await t.cli(["run", "--rm", "--cap-add", "NO_SUCH_CAP", "demo", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr.split("\n")[0]).toMatch(/cap-add: .*NO_SUCH_CAP/);
    await waitFor(async () => (await t.cli(["ls", "-aq"])).stdout === before, 30_000, "the --rm container to go");
  });
});
