import { describe, expect, it } from "vitest";
import { ContainerError } from "../lib/errors/index.js";
import {
  parseBytes,
  parseCpus,
  parseEnv,
  parseEnvFile,
  parseLabels,
  parseMemoryMiB,
  parseSecurityOpts,
  parseSignal,
  parseTmpfs,
  parseUlimit,
  parseUser,
  signalNumber,
} from "./parse.js";
import { expectContainerError } from "../lib/errors/testing.js";

const invalid = (fn: () => unknown): ContainerError => expectContainerError(fn, "invalidArgument");

describe("parseMemoryMiB", () => {
  it.each([
    ["512M", 512],
    ["512m", 512],
    ["512MB", 512],
    ["512mib", 512],
    ["2g", 2048],
    ["2G", 2048],
    ["1GiB", 1024],
    ["1.5g", 1536],
    ["65536k", 64],
    ["1t", 1024 * 1024],
    ["536870912", 512],
    ["536870912b", 512],
    [" 256M ", 256],
    ["64M", 64],
  ])("%j -> %d", (input, mib) => {
    expect(parseMemoryMiB(input)).toBe(mib);
  });

  it.each(["1zb", "", "-1", "M", "1.g", "1 2M", "12x", "0x100M"])("rejects %j with a hint", (input) => {
    expect(invalid(() => parseMemoryMiB(input)).hint).toMatch(/512M/);
  });

  it.each(["10M", "63M", "67108863", "0"])("rejects %j as below 64M", (input) => {
    expect(invalid(() => parseMemoryMiB(input)).message).toMatch(/minimum of 64M/);
  });

  it("rejects absurdly large sizes", () => {
    expect(invalid(() => parseMemoryMiB(`${"9".repeat(30)}t`)).message).toMatch(/too large/);
  });
});

describe("parseCpus", () => {
  it.each([
    ["1", 1],
    ["4", 4],
    ["64", 64],
  ])("%j -> %d", (input, n) => {
    expect(parseCpus(input)).toBe(n);
  });

  it.each(["0", "-1", "1.5", "", "two", "NaN", "Infinity"])("rejects %j", (input) => {
    expect(invalid(() => parseCpus(input)).hint).toMatch(/whole number/);
  });
});

describe("parseEnv", () => {
  const env = { HOME: "/home/me", EMPTY: "" };

  it("keeps KEY=VALUE entries as given", () => {
    expect(parseEnv(["A=1", "B=", "C=x=y", "D= spaced value "], env)).toEqual(["A=1", "B=", "C=x=y", "D= spaced value "]);
  });

  it("copies a bare KEY from the given environment", () => {
    expect(parseEnv(["HOME", "EMPTY"], env)).toEqual(["HOME=/home/me", "EMPTY="]);
  });

  it("drops a bare KEY that is unset", () => {
    expect(parseEnv(["A=1", "NOT_SET_ANYWHERE", "B=2"], env)).toEqual(["A=1", "B=2"]);
  });

  it("keeps order and duplicates", () => {
    expect(parseEnv(["A=1", "HOME", "A=2"], env)).toEqual(["A=1", "HOME=/home/me", "A=2"]);
  });

  it("returns nothing for no entries", () => {
    expect(parseEnv([], env)).toEqual([]);
  });

  it.each(["=x", "", "A B=1", "A\tB=1", "A\0=1", " A=1"])("rejects %j", (entry) => {
    expect(invalid(() => parseEnv([entry], env)).hint).toBe("use -e KEY=VALUE");
  });

  it("defaults to process.env", () => {
    process.env.PARSE_TEST_ONLY_VAR = "yes";
    try {
      expect(parseEnv(["PARSE_TEST_ONLY_VAR"])).toEqual(["PARSE_TEST_ONLY_VAR=yes"]);
    } finally {
      delete process.env.PARSE_TEST_ONLY_VAR;
    }
  });
});

describe("parseSignal", () => {
  it.each([
    ["TERM", 15],
    ["term", 15],
    ["SIGTERM", 15],
    ["SIGKILL", 9],
    ["sigkill", 9],
    ["KILL", 9],
    ["HUP", 1],
    ["INT", 2],
    ["USR1", 10],
    ["WINCH", 28],
    ["9", 9],
    ["1", 1],
    ["64", 64],
  ])("%j -> %d", (input, n) => {
    expect(parseSignal(input)).toBe(n);
  });

  it.each(["bogus", "", "SIG", "0", "65", "-9", "9.0", "SIGBOGUS", "CONSTRUCTOR", "__proto__"])("rejects %j", (input) => {
    expect(invalid(() => parseSignal(input)).message).toContain("unknown signal");
  });

  it("signalNumber maps Node signal names", () => {
    expect(signalNumber("SIGTERM")).toBe(15);
    expect(signalNumber("SIGINT")).toBe(2);
  });
});

describe("parseEnvFile", () => {
  it("reads KEY=VALUE lines, skips comments and blanks, takes bare keys from the environment", () => {
    const text = "# comment\nA=1\n\n  B=two words\nHOME_FROM_ENV\nUNSET_ONE\nC==x\r\n";
    expect(parseEnvFile(text, "f.env", { HOME_FROM_ENV: "/h" })).toEqual(["A=1", "B=two words", "HOME_FROM_ENV=/h", "C==x"]);
  });

  it("names the file and line of a bad entry", () => {
    const err = expectContainerError(() => parseEnvFile("A=1\n=oops\n", "f.env", {}), "invalidArgument");
    expect(err.message).toBe('f.env:2: invalid environment variable "=oops"');
  });
});

describe("parseLabels", () => {
  it("maps KEY=VALUE and bare keys", () => {
    expect(parseLabels(["a=1", "b", "c=x=y"])).toEqual({ a: "1", b: "", c: "x=y" });
  });

  it("rejects an empty key", () => {
    expectContainerError(() => parseLabels(["=v"]), "invalidArgument");
  });
});

describe("parseUser", () => {
  it.each([
    [{}, ""],
    [{ user: "nobody" }, "nobody"],
    [{ user: "1000:100" }, "1000:100"],
    [{ uid: "1000" }, "1000"],
    [{ uid: "1000", gid: "100" }, "1000:100"],
    [{ user: "nobody", gid: "100" }, "nobody:100"],
  ])("%j -> %j", (opts, want) => {
    expect(parseUser(opts)).toBe(want);
  });

  it.each([[{ user: "a", uid: "1" }], [{ uid: "x" }], [{ gid: "-1" }], [{ user: "a:b", gid: "1" }], [{ user: "a:b:c" }], [{ user: "" }]])(
    "rejects %j",
    (opts) => {
      expectContainerError(() => parseUser(opts), "invalidArgument");
    },
  );
});

describe("parseUlimit", () => {
  it.each([
    ["nofile=1024:2048", { type: "nofile", soft: 1024, hard: 2048 }],
    ["nproc=64", { type: "nproc", soft: 64, hard: 64 }],
    ["core=unlimited", { type: "core", soft: -1, hard: -1 }],
    ["memlock=-1:-1", { type: "memlock", soft: -1, hard: -1 }],
  ])("%s", (value, want) => {
    expect(parseUlimit(value)).toEqual(want);
  });

  it.each(["nofile", "nofile=", "nofile=a:b", "=1", "nofile=1:2:3", "nofile=1.5"])("rejects %j", (value) => {
    expect(invalid(() => parseUlimit(value)).message).toBe(`invalid ulimit "${value}"`);
  });
});

describe("parseTmpfs", () => {
  it("splits the path from its options", () => {
    expect(parseTmpfs("/run")).toEqual({ path: "/run", options: [] });
    expect(parseTmpfs("/run:size=64m,mode=1777,noexec")).toEqual({ path: "/run", options: ["size=64m", "mode=1777", "noexec"] });
  });

  it("rejects a relative path", () => {
    expect(invalid(() => parseTmpfs("run:size=1m")).hint).toMatch(/absolute/);
  });
});

describe("parseBytes", () => {
  it("reads Docker's sizes", () => {
    expect(parseBytes("64m")).toBe(64 * 1024 ** 2);
    expect(parseBytes("1g", "shm size")).toBe(1024 ** 3);
    expect(parseBytes("100")).toBe(100);
  });

  it("names what it read in errors", () => {
    expect(invalid(() => parseBytes("1zb", "shm size")).message).toBe('invalid shm size "1zb"');
  });
});

describe("parseSecurityOpts", () => {
  it("takes no-new-privileges, the last one winning", () => {
    expect(parseSecurityOpts([])).toEqual({ noNewPrivileges: false });
    expect(parseSecurityOpts(["no-new-privileges"])).toEqual({ noNewPrivileges: true });
    expect(parseSecurityOpts(["no-new-privileges:true", "no-new-privileges=false"])).toEqual({ noNewPrivileges: false });
  });

  it("refuses the others by name", () => {
    expect(expectContainerError(() => parseSecurityOpts(["seccomp=unconfined"]), "unsupported").message).toBe('unsupported security option "seccomp=unconfined"');
  });
});
