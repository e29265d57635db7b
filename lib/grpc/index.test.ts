import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata, status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RuntimeClient, RuntimeService, type RuntimeServer } from "../../helpers/runtime/api/gen/runtime.js";
import { CODE_METADATA_KEY, ContainerError, HINT_METADATA_KEY } from "../errors/index.js";
import { bindUnix, call, insecure, Server, toGrpcError, unary, unixTarget } from "./index.js";

describe("toGrpcError", () => {
  it("maps a ContainerError to status, details and metadata", () => {
    const e = toGrpcError(new ContainerError("notFound", "x", { hint: "h" }));
    expect(e.code).toBe(5);
    expect(e.details).toBe("x");
    expect(e.metadata?.get(CODE_METADATA_KEY)).toEqual(["notFound"]);
    expect(e.metadata?.get(HINT_METADATA_KEY)).toEqual(["h"]);
  });

  it("sends no hint metadata when there is none", () => {
    const e = toGrpcError(new ContainerError("exists", "dup"));
    expect(e.code).toBe(status.ALREADY_EXISTS);
    expect(e.metadata?.get(HINT_METADATA_KEY)).toEqual([]);
  });

  it("maps an arbitrary error to internal", () => {
    const e = toGrpcError(new Error("oops"));
    expect(e.code).toBe(status.INTERNAL);
    expect(e.details).toBe("oops");
    expect(e.metadata?.get(CODE_METADATA_KEY)).toEqual(["internal"]);
  });
});

describe("unixTarget", () => {
  it("prefixes unix:", () => {
    expect(unixTarget("/run/x.sock")).toBe("unix:/run/x.sock");
  });
});

describe("round trip over a unix socket", () => {
  let dir: string;
  let server: Server | undefined;
  let client: RuntimeClient | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "grpc-test-"));
  });

  afterEach(async () => {
    client?.close();
    client = undefined;
    if (server) {
      const s = server;
      await new Promise<void>((resolve) => s.tryShutdown(() => resolve()));
      server = undefined;
    }
    await rm(dir, { recursive: true, force: true });
  });

  async function serve(path: string): Promise<RuntimeClient> {
    const impl: RuntimeServer = {
      state: unary(async () => {
        throw new ContainerError("invalidState", "nope", { hint: "try later" });
      }),
      start: unary(async () => ({ processPid: 42 })),
      attach: (stream) => stream.end(),
      exec: (stream) => stream.end(),
      copyOut: (call) => call.end(),
      copyIn: (_call, callback) => callback(null, {}),
      stats: unary(async () => {
        throw new ContainerError("invalidState", "not running");
      }),
      wait: unary(async () => {
        throw new Error("plain failure");
      }),
      kill: unary(async (req) => {
        if (req.signal === 0) throw new ContainerError("invalidArgument", "signal 0");
        return {};
      }),
      stop: unary(async () => ({})),
    };
    server = new Server();
    server.addService(RuntimeService, impl);
    await bindUnix(server, path);
    client = new RuntimeClient(unixTarget(path), insecure());
    return client;
  }

  it("binds with a 0700 directory and a 0600 socket", async () => {
    const path = join(dir, "sub", "runtime.sock");
    await serve(path);
    const sock = await stat(path);
    expect(sock.isSocket()).toBe(true);
    expect(sock.mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "sub"))).mode & 0o777).toBe(0o700);
  });

  it("replaces a stale socket file", async () => {
    const path = join(dir, "sub", "runtime.sock");
    const first = new Server();
    await bindUnix(first, path);
    first.forceShutdown();
    const c = await serve(path);
    expect(await call(c.start, c, { size: undefined }, new Metadata())).toEqual({ processPid: 42 });
  });

  it("returns responses", async () => {
    const c = await serve(join(dir, "sub", "runtime.sock"));
    expect(await call(c.start, c, { size: undefined }, new Metadata())).toEqual({ processPid: 42 });
    expect(await call(c.kill, c, { signal: 9 }, new Metadata())).toEqual({});
  });

  it("delivers a thrown ContainerError with code, message and hint", async () => {
    const c = await serve(join(dir, "sub", "runtime.sock"));
    const err: unknown = await call(c.state, c, {}, new Metadata()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ContainerError);
    const ce = err as ContainerError;
    expect(ce.code).toBe("invalidState");
    expect(ce.message).toBe("nope");
    expect(ce.hint).toBe("try later");
  });

  it("delivers other errors as internal and hintless invalidArgument", async () => {
    const c = await serve(join(dir, "sub", "runtime.sock"));
    await expect(call(c.wait, c, {}, new Metadata())).rejects.toMatchObject({ code: "internal", message: "plain failure" });
    const err = await call(c.kill, c, { signal: 0 }, new Metadata()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "invalidArgument", message: "signal 0", hint: undefined });
  });

  it("reports an unreachable peer as unavailable", async () => {
    client = new RuntimeClient(unixTarget(join(dir, "nobody.sock")), insecure());
    const c = client;
    await expect(call(c.start, c, { size: undefined }, new Metadata(), { deadline: Date.now() + 2000 })).rejects.toMatchObject({ code: "unavailable" });
  });
});
