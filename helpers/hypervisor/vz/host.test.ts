import { describe, expect, it } from "vitest";
import type { FromHost } from "./protocol.js";
import { relay } from "./host.js";

describe("VM host relay", () => {
  it("turns bridge events into IPC messages without the fields the event left empty", async () => {
    const sent: FromHost[] = [];
    const deliver = async (m: FromHost): Promise<void> => void sent.push(m);
    await relay({ kind: "startFailed", request: 3, port: null, fd: null, error: '{"code":"internal","message":"x"}' }, deliver);
    await relay({ kind: "guestStopped", request: null, port: null, fd: null, error: null }, deliver);
    expect(sent).toEqual([{ kind: "startFailed", request: 3, error: '{"code":"internal","message":"x"}' }, { kind: "guestStopped" }]);
  });
});
