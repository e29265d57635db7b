import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { delimitedReader, encodeDelimited } from "./bootstrap.js";
import { BootstrapEvent, BootstrapRequest } from "./gen/agent.js";

function delimited(ev: BootstrapEvent): Buffer {
  return Buffer.from(new BinaryWriter().bytes(BootstrapEvent.encode(ev).finish()).finish());
}

describe("bootstrap framing", () => {
  it("splits length-delimited messages however the bytes arrive", () => {
    const events: BootstrapEvent[] = [
      { started: { pid: 37 } },
      { exited: { exitCode: 7, exitedAtNs: 1_795_000_000_000_000_000n } },
      { failed: { code: "notFound", message: 'executable "x" not found', hint: "" } },
      {},
    ];
    const bytes = Buffer.concat(events.map(delimited));
    for (const size of [1, 2, 3, 7, bytes.length]) {
      const got: BootstrapEvent[] = [];
      const push = delimitedReader((b) => got.push(BootstrapEvent.decode(b)));
      for (let i = 0; i < bytes.length; i += size) push(bytes.subarray(i, i + size));
      expect(got).toEqual(events.map((e) => BootstrapEvent.fromPartial(e)));
    }
  });

  it("writes a request the reader reads back", () => {
    const request = BootstrapRequest.fromPartial({
      mounts: [{ source: "/dev/vdb", target: "/run/container/rootfs", fstype: "ext4", options: [] }],
      process: { id: "init", spec: { args: ["echo", "x".repeat(300)], env: ["A=B"], cwd: "/", rootfs: "/run/container/rootfs" }, stdoutPort: 2001 },
    });
    const got: BootstrapRequest[] = [];
    delimitedReader((b) => got.push(BootstrapRequest.decode(b)))(Buffer.from(encodeDelimited(request)));
    expect(got).toEqual([request]);
  });
});
