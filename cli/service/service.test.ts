import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectContainerError } from "../../lib/errors/testing.js";
import { serviceEnv, serviceKind } from "./index.js";
import { launchdPlist, LAUNCHD_LABEL } from "./launchd.js";
import { systemdAvailable, systemdUnit } from "./systemd.js";

const spec = {
  node: "/opt/node 20/bin/node",
  main: "/src/dist/apiserver/main.js",
  env: { CONTAINER_DATA_DIR: "/data dir", PATH: "/usr/bin:/bin", WEIRD: 'a"b<c>&' },
  logPath: "/data dir/apiserver.log",
};

describe("serviceKind", () => {
  it("is launchd on macOS, systemd where a user manager runs, detached otherwise", async () => {
    const run = await mkdtemp(join(tmpdir(), "xdg-run-"));
    expect(serviceKind({}, "darwin")).toBe("launchd");
    expect(serviceKind({ XDG_RUNTIME_DIR: run }, "linux")).toBe("detached");
    await mkdir(join(run, "systemd"));
    await writeFile(join(run, "systemd", "private"), "");
    expect(systemdAvailable({ XDG_RUNTIME_DIR: run })).toBe(true);
    expect(serviceKind({ XDG_RUNTIME_DIR: run }, "linux")).toBe("systemd");
    expect(serviceKind({ XDG_RUNTIME_DIR: run, CONTAINER_SERVICE: "detached" }, "linux")).toBe("detached");
    expectContainerError(() => serviceKind({ CONTAINER_SERVICE: "upstart" }, "linux"), "invalidArgument");
    await rm(run, { recursive: true });
  });

  it("passes on only the settings the apiserver needs", () => {
    expect(
      serviceEnv({ CONTAINER_DATA_DIR: "/d", CONTAINER_SERVICE: "systemd", XDG_RUNTIME_DIR: "/r", PATH: "/p", NODE_EXTRA_CA_CERTS: "/ca.pem", SECRET: "x" }),
    ).toEqual({
      CONTAINER_DATA_DIR: "/d",
      XDG_RUNTIME_DIR: "/r",
      PATH: "/p",
      NODE_EXTRA_CA_CERTS: "/ca.pem",
    });
  });
});

describe("systemd unit", () => {
  it("runs this Node and apiserver, keeps helpers alive on stop, restarts only on failure", () => {
    const unit = systemdUnit(spec);
    expect(unit).toContain('ExecStart="/opt/node 20/bin/node" /src/dist/apiserver/main.js\n');
    expect(unit).toContain('Environment="CONTAINER_DATA_DIR=/data dir"\n');
    expect(unit).toContain('Environment="WEIRD=a\\"b<c>&"\n');
    expect(unit).toContain("KillMode=process\n");
    expect(unit).toContain("Restart=on-failure\n");
    expect(unit).toContain("StandardError=append:/data dir/apiserver.log\n");
  });
});

describe("launchd plist", () => {
  it("is well-formed XML with escaped values, KeepAlive on failure, helpers abandoned", () => {
    const plist = launchdPlist(spec);
    expect(plist).toContain(`<key>Label</key><string>${LAUNCHD_LABEL}</string>`);
    expect(plist).toContain("<array><string>/opt/node 20/bin/node</string><string>/src/dist/apiserver/main.js</string></array>");
    expect(plist).toContain("<key>WEIRD</key><string>a&#34;b&#60;c&#62;&#38;</string>");
    expect(plist).toContain("<dict><key>SuccessfulExit</key><false/></dict>");
    expect(plist).toContain("<key>AbandonProcessGroup</key><true/>");
    // Balanced tags: every opened dict/array/plist is closed.
    for (const tag of ["dict", "array", "plist"]) {
      expect(plist.split(`<${tag}`).length).toBe(plist.split(`</${tag}>`).length);
    }
  });
});
