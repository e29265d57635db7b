// The plist is checked by an independent parser (Python's plistlib, strict
// about the XML property list format as plutil -lint is), and the launchctl
// steps against a recording stand-in for launchctl.
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectContainerRejection } from "../../lib/errors/testing.js";
import { LAUNCHD_LABEL, launchctlArgs, launchdPlist, launchdPlistPath, RESTART_THROTTLE_S, startLaunchdAgent, stopLaunchdAgent, type LaunchdDeps } from "./launchd.js";

const spec = {
  node: "/opt/node 20/bin/node",
  main: "/src/dist/apiserver/main.js",
  env: { CONTAINER_DATA_DIR: "/data dir", PATH: "/usr/bin:/bin", WEIRD: "a\"b<c>&'é" },
  logPath: "/data dir/apiserver.log",
};

/** The plist as plistlib reads it (plistlib rejects what is not a well-formed XML plist). */
function parsePlist(text: string): unknown {
  const script = "import json,plistlib,sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read(), fmt=plistlib.FMT_XML)))";
  return JSON.parse(execFileSync("python3", ["-c", script], { input: text }).toString());
}

describe("launchd plist", () => {
  it("parses as an XML property list with exactly the keys launchd needs", () => {
    expect(parsePlist(launchdPlist(spec))).toEqual({
      Label: LAUNCHD_LABEL,
      ProgramArguments: [spec.node, spec.main],
      EnvironmentVariables: spec.env,
      RunAtLoad: true,
      KeepAlive: { SuccessfulExit: false },
      ThrottleInterval: RESTART_THROTTLE_S,
      AbandonProcessGroup: true,
      ProcessType: "Interactive",
      StandardOutPath: spec.logPath,
      StandardErrorPath: spec.logPath,
    });
  });

  it("still parses with no environment at all", () => {
    expect(parsePlist(launchdPlist({ ...spec, env: {} }))).toMatchObject({ EnvironmentVariables: {} });
  });

  it("lives in the user's LaunchAgents under its label", () => {
    expect(launchdPlistPath("/Users/me")).toBe(`/Users/me/Library/LaunchAgents/${LAUNCHD_LABEL}.plist`);
  });
});

function recorder(failBootstrap: number): { deps: LaunchdDeps; calls: string[][]; sleeps: number[]; dir: Promise<string> } {
  const calls: string[][] = [];
  const sleeps: number[] = [];
  const dir = mkdtemp(join(tmpdir(), "launchd-"));
  let failures = failBootstrap;
  const deps: LaunchdDeps = {
    uid: 501,
    plistPath: "",
    launchctl: async (args) => {
      calls.push(args);
      if (args[0] === "bootstrap" && failures-- > 0) throw new Error("Bootstrap failed: 5: Input/output error\nmore");
      if (args[0] === "bootout") throw new Error("Boot-out failed: 3: No such process");
    },
    sleep: async (ms) => void sleeps.push(ms),
  };
  return { deps, calls, sleeps, dir };
}

describe("launchctl", () => {
  it("boots the agent out of and into gui/<uid>", () => {
    expect(launchctlArgs(501, "/p.plist")).toEqual({
      enable: ["enable", `gui/501/${LAUNCHD_LABEL}`],
      bootstrap: ["bootstrap", "gui/501", "/p.plist"],
      bootout: ["bootout", `gui/501/${LAUNCHD_LABEL}`],
    });
  });

  it("writes the plist, replaces a loaded agent, and retries bootstrap while the old one goes away", async () => {
    const r = recorder(2);
    const dir = await r.dir;
    r.deps.plistPath = join(dir, "LaunchAgents", "agent.plist");
    await startLaunchdAgent(spec, r.deps);
    expect(r.calls.map((c) => c[0])).toEqual(["bootout", "enable", "bootstrap", "bootstrap", "bootstrap"]);
    expect(r.sleeps).toEqual([200, 400]);
    expect(await readFile(r.deps.plistPath, "utf8")).toBe(launchdPlist(spec));
    expect((await stat(r.deps.plistPath)).mode & 0o777).toBe(0o644);
    await stopLaunchdAgent(r.deps);
    expect(r.calls.at(-1)).toEqual(["bootout", `gui/501/${LAUNCHD_LABEL}`]);
    await rm(dir, { recursive: true });
  });

  it("gives up with unavailable, naming the plist and how to look", async () => {
    const r = recorder(99);
    const dir = await r.dir;
    r.deps.plistPath = join(dir, "agent.plist");
    const err = await expectContainerRejection(startLaunchdAgent(spec, r.deps), "unavailable", /Input\/output error$/);
    expect(err.hint).toContain(`launchctl print gui/501/${LAUNCHD_LABEL}`);
    expect(r.calls.filter((c) => c[0] === "bootstrap")).toHaveLength(5);
    await rm(dir, { recursive: true });
  });
});
