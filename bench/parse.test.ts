import { describe, expect, it } from "vitest";
import { MiB, mbPerSecond, parseMeminfo, unpackRecords, usedBytes } from "./parse.js";

const MEMINFO = `MemTotal:        1019212 kB
MemFree:          989356 kB
MemAvailable:     987268 kB
Buffers:            1024 kB
`;

describe("parseMeminfo", () => {
  it("reads MemTotal and MemAvailable in bytes", () => {
    expect(parseMeminfo(MEMINFO)).toEqual({ totalBytes: 1019212 * 1024, availableBytes: 987268 * 1024 });
  });

  it("gives the memory in use", () => {
    expect(usedBytes(parseMeminfo(MEMINFO))).toBe((1019212 - 987268) * 1024);
  });

  it("fails without MemAvailable (kernels before 3.14)", () => {
    expect(() => parseMeminfo("MemTotal: 1 kB\nMemFree: 1 kB\n")).toThrow(/no MemAvailable/);
  });
});

describe("unpackRecords", () => {
  it("picks the rootfs unpacked records, skipping other and broken lines", () => {
    const log = [
      '{"time":"t","level":"info","msg":"apiserver serving","pid":1}',
      '{"time":"t","level":"info","msg":"rootfs unpacked","component":"apiserver","manifest":"sha256:aa","layers":1,"bytes":1000,"inodes":5,"size":4096,"ms":12}',
      '{"msg":"rootfs unpacked", "manifest": "sha256:bb", "bytes": "x"}',
      '{"msg":"rootfs unpacked" truncated',
      '{"msg":"rootfs unpacked","manifest":"sha256:cc","bytes":2,"size":3,"ms":4}',
      "",
    ].join("\n");
    expect(unpackRecords(log)).toEqual([
      { manifest: "sha256:aa", bytes: 1000, size: 4096, ms: 12 },
      { manifest: "sha256:cc", bytes: 2, size: 3, ms: 4 },
    ]);
  });

  it("finds nothing in an empty log", () => {
    expect(unpackRecords("")).toEqual([]);
  });
});

describe("mbPerSecond", () => {
  it("is 10^6 bytes per second", () => {
    expect(mbPerSecond(256 * MiB, 1000)).toBeCloseTo(268.435456);
    expect(mbPerSecond(2e6, 500)).toBe(4);
  });
});
