import { mkdtemp, rm, stat } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { dialVsock, listenVsock, parseConnectReply } from "./vsock.js";

describe("parseConnectReply", () => {
  it("waits for a whole line", () => {
    expect(parseConnectReply(Buffer.from("OK 10"))).toEqual({ kind: "incomplete" });
    expect(parseConnectReply(Buffer.alloc(0))).toEqual({ kind: "incomplete" });
  });

  it("returns the host port and the bytes after the line", () => {
    const r = parseConnectReply(Buffer.from("OK 1073741824\nhello"));
    expect(r.kind).toBe("ok");
    if (r.kind !== "ok") return;
    expect(r.hostPort).toBe(1073741824);
    expect(r.rest.toString()).toBe("hello");
  });

  it("rejects anything but OK <number>", () => {
    for (const line of ["NO\n", "OK\n", "OK x\n", "ok 1\n", "OK 1 2\n", "OK 99999999999\n"]) {
      expect(parseConnectReply(Buffer.from(line)).kind, line).toBe("error");
    }
  });

  it("gives up on an endless line", () => {
    expect(parseConnectReply(Buffer.alloc(100, 0x41)).kind).toBe("error");
  });
});

/** A stand-in for vhost-device-vsock's host socket. */
function fakeBackend(path: string, onConnect: (port: number, socket: Socket) => void): Promise<Server> {
  const server = createServer((socket) => {
    let line = "";
    const onData = (chunk: Buffer): void => {
      line += chunk.toString("latin1");
      const nl = line.indexOf("\n");
      if (nl < 0) return;
      socket.removeListener("data", onData);
      const m = /^CONNECT (\d+)$/.exec(line.slice(0, nl));
      if (!m) {
        socket.destroy();
        return;
      }
      onConnect(Number(m[1]), socket);
    };
    socket.on("data", onData);
  });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

function readAll(stream: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    stream.setEncoding("utf8");
    stream.on("data", (d: string) => (out += d));
    stream.on("end", () => resolve(out));
    stream.on("error", reject);
  });
}

describe("dialVsock", () => {
  let dir: string;
  let server: Server | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "vsock-test-"));
  });
  afterEach(async () => {
    server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("sends CONNECT and keeps bytes that arrive with the OK line", async () => {
    const path = join(dir, "v.sock");
    let asked = -1;
    server = await fakeBackend(path, (port, socket) => {
      asked = port;
      // OK line and the guest's first bytes in one write.
      socket.end("OK 4000\nfirst bytes, then more");
    });
    const stream = await dialVsock(path, 1024, { timeoutMs: 2000 });
    expect(asked).toBe(1024);
    expect(await readAll(stream)).toBe("first bytes, then more");
  });

  it("handles an OK line split over several writes", async () => {
    const path = join(dir, "v.sock");
    server = await fakeBackend(path, (_port, socket) => {
      socket.write("O");
      setTimeout(() => socket.write("K 12"), 10);
      setTimeout(() => socket.end("\nabc"), 20);
    });
    const stream = await dialVsock(path, 5, { timeoutMs: 2000 });
    expect(await readAll(stream)).toBe("abc");
  });

  it("carries data both ways after the handshake", async () => {
    const path = join(dir, "v.sock");
    server = await fakeBackend(path, (_port, socket) => {
      socket.write("OK 1\n");
      socket.on("data", (d) => socket.end(`echo:${d.toString()}`));
    });
    const stream = await dialVsock(path, 7, { timeoutMs: 2000 });
    stream.write("ping");
    expect(await readAll(stream)).toBe("echo:ping");
  });

  it("fails with unavailable when the backend closes instead of answering (nobody listens)", async () => {
    const path = join(dir, "v.sock");
    server = await fakeBackend(path, (_port, socket) => socket.end());
    const err = await dialVsock(path, 9999, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(isContainerError(err, "unavailable")).toBe(true);
  });

  it("fails with unavailable when the backend resets the connection (guest driver not up yet)", async () => {
    const path = join(dir, "v.sock");
    // Closing a unix socket with unread data makes the peer's read fail with ECONNRESET.
    server = createServer({ pauseOnConnect: true }, (socket) => setTimeout(() => socket.destroy(), 20));
    await new Promise<void>((r) => server!.listen(path, () => r()));
    const err = await dialVsock(path, 1024, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(isContainerError(err, "unavailable"), String(err)).toBe(true);
  });

  it("fails on a malformed answer", async () => {
    const path = join(dir, "v.sock");
    server = await fakeBackend(path, (_port, socket) => socket.write("ERR nope\n"));
    const err = await dialVsock(path, 1, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(isContainerError(err, "internal")).toBe(true);
  });

  it("times out when the backend never answers", async () => {
    const path = join(dir, "v.sock");
    server = await fakeBackend(path, () => {});
    const t0 = Date.now();
    const err = await dialVsock(path, 1, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(isContainerError(err, "timeout")).toBe(true);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("fails with unavailable when there is no backend socket", async () => {
    const err = await dialVsock(join(dir, "missing.sock"), 1, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(isContainerError(err, "unavailable")).toBe(true);
  });

  it("rejects invalid ports", async () => {
    await expect(dialVsock(join(dir, "x"), -1, { timeoutMs: 10 })).rejects.toMatchObject({ code: "invalidArgument" });
    await expect(dialVsock(join(dir, "x"), 1.5, { timeoutMs: 10 })).rejects.toMatchObject({ code: "invalidArgument" });
  });
});

describe("listenVsock", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "vsock-test-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("yields connections made to <uds>_<port> (even ones made before iterating), and removes the socket on close", async () => {
    const path = join(dir, "v.sock_2000");
    const listener = await listenVsock(path);
    const early = createConnection({ path });
    early.end("one");
    const it = listener.connections()[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    expect(await readAll(first.value as Duplex)).toBe("one");

    const second = createConnection({ path });
    second.end("two");
    const next = await it.next();
    expect(await readAll(next.value as Duplex)).toBe("two");

    const pending = it.next();
    await listener.close();
    expect((await pending).done).toBe(true);
    await expect(stat(path)).rejects.toMatchObject({ code: "ENOENT" });
    await listener.close(); // idempotent
  });

  it("replaces a stale socket file", async () => {
    const path = join(dir, "v.sock_1");
    const stale = createServer();
    await new Promise<void>((r) => stale.listen(path, () => r()));
    // Simulate a crash: the file stays, nobody listens.
    stale.close();
    const listener = await listenVsock(path);
    const c = createConnection({ path });
    c.end();
    const got = await listener.connections()[Symbol.asyncIterator]().next();
    expect(got.done).toBe(false);
    await listener.close();
  });
});
