import { Duplex, PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { QmpClient } from "./qmp.js";

/** A fake QEMU monitor: what the client writes arrives in `sent`; `reply` writes to the client. */
function fakeMonitor(): { stream: Duplex; sent: () => Array<Record<string, unknown>>; reply: (obj: unknown) => void; close: () => void } {
  const toClient = new PassThrough();
  const fromClient = new PassThrough();
  const stream = Duplex.from({ readable: toClient, writable: fromClient });
  let written = "";
  fromClient.on("data", (d: Buffer) => (written += d.toString()));
  return {
    stream,
    sent: () => written.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
    reply: (obj) => toClient.write(JSON.stringify(obj) + "\r\n"),
    close: () => stream.destroy(),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("QmpClient", () => {
  it("waits for the greeting, negotiates, and matches replies by id", async () => {
    const m = fakeMonitor();
    const qmp = new QmpClient(m.stream);
    const ready = qmp.handshake();
    await tick();
    expect(m.sent()).toEqual([]);
    m.reply({ QMP: { version: {}, capabilities: [] } });
    await tick();
    const [caps] = m.sent();
    expect(caps).toMatchObject({ execute: "qmp_capabilities" });
    m.reply({ return: {}, id: caps!.id });
    await ready;

    const status = qmp.execute("query-status");
    const bad = qmp.execute("nope");
    await tick();
    const [, q, n] = m.sent();
    m.reply({ error: { class: "CommandNotFound", desc: "The command nope has not been found" }, id: n!.id });
    m.reply({ return: { status: "running" }, id: q!.id });
    expect(await status).toEqual({ status: "running" });
    await expect(bad).rejects.toThrow(/CommandNotFound/);
  });

  it("remembers the first SHUTDOWN event and hands every event to the callback", async () => {
    const m = fakeMonitor();
    const seen: string[] = [];
    const qmp = new QmpClient(m.stream, (e) => seen.push(e.event));
    expect(qmp.shutdownEvent()).toBeUndefined();
    m.reply({ event: "RTC_CHANGE", data: { offset: 1 } });
    m.reply({ event: "SHUTDOWN", data: { guest: true, reason: "guest-reset" } });
    m.reply({ event: "SHUTDOWN", data: { guest: false, reason: "host-signal" } });
    await tick();
    expect(seen).toEqual(["RTC_CHANGE", "SHUTDOWN", "SHUTDOWN"]);
    expect(qmp.shutdownEvent()).toEqual({ guest: true, reason: "guest-reset" });
  });

  it("fails pending commands and the greeting when QEMU goes away", async () => {
    const m = fakeMonitor();
    const qmp = new QmpClient(m.stream);
    const ready = qmp.handshake();
    m.close();
    await expect(ready).rejects.toMatchObject({ code: "unavailable" });
    await expect(qmp.execute("query-status")).rejects.toBeDefined();
  });
});
