// The node:http2 client against a real grpc-js server serving a generic
// definition through grpcService: the two halves the CLI and the apiserver use.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServerDuplexStream, ServerReadableStream, ServerWritableStream, sendUnaryData } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ContainerConfig,
  ContainerServiceDefinition,
  type AttachRequest,
  type AttachResponse,
  type LoadImageRequest,
  type LoadImageResponse,
  type SaveImagesChunk,
  type SaveImagesRequest,
} from "../../apiserver/api/gen/apiserver.js";
import { ContainerError } from "../errors/index.js";
import { expectContainerRejection } from "../errors/testing.js";
import { createHttp2Client, type Http2Client } from "./http2-client.js";
import { bindUnix, grpcService, Server, unary, type ServerOf } from "./index.js";

type Service = typeof ContainerServiceDefinition;

const impl: Partial<ServerOf<Service>> = {
  ping: unary(async () => ({ version: "test", pid: 42, accelerator: "tcg" })),
  createContainer: unary(async (req) => {
    if (req.config?.image === "missing") throw new ContainerError("notFound", "image missing not found", { hint: "load it" });
    return { id: `id-of-${req.config?.image ?? ""}` };
  }),
  listContainers: unary(async () => {
    await new Promise((r) => setTimeout(r, 2000));
    return { containers: [] };
  }),
  loadImage: (call: ServerReadableStream<LoadImageRequest, LoadImageResponse>, callback: sendUnaryData<LoadImageResponse>) => {
    let bytes = 0;
    call.on("data", (req: LoadImageRequest) => (bytes += req.chunk.length));
    call.on("end", () => callback(null, { images: [{ reference: "bytes", digest: "", platforms: [], size: BigInt(bytes) }] }));
  },
  // 64 chunks of 64 KiB, then the status at once.
  saveImages: (call: ServerWritableStream<SaveImagesRequest, SaveImagesChunk>) => {
    for (let i = 0; i < 64; i++) call.write({ data: Buffer.alloc(64 * 1024, i) });
    call.end();
  },
  // Echoes stdin to stdout; closeStdin ends the call with exit status 3.
  attach: (stream: ServerDuplexStream<AttachRequest, AttachResponse>) => {
    stream.on("data", (req: AttachRequest) => {
      if (req.stdin) stream.write({ stdout: req.stdin });
      if (req.closeStdin) {
        stream.write({ exitCode: 3 });
        stream.end();
      }
    });
  },
};

describe("http2 client", () => {
  let dir: string;
  let server: Server | undefined;
  let client: Http2Client<Service> | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "http2-client-"));
  });

  afterEach(async () => {
    client?.close();
    client = undefined;
    if (server) server.forceShutdown();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  async function serve(): Promise<Http2Client<Service>> {
    server = new Server();
    server.addService(...grpcService(ContainerServiceDefinition, impl as ServerOf<Service>));
    const path = join(dir, "api.sock");
    await bindUnix(server, path);
    client = createHttp2Client(ContainerServiceDefinition, path);
    return client;
  }

  it("makes unary calls", async () => {
    const c = await serve();
    expect(await c.unary("ping", {})).toEqual({ version: "test", pid: 42, accelerator: "tcg" });
    const res = await c.unary("createContainer", {
      config: ContainerConfig.fromPartial({ image: "demo" }),
    });
    expect(res.id).toBe("id-of-demo");
  });

  it("rebuilds the server's ContainerError with its code and hint", async () => {
    const c = await serve();
    const call = c.unary("createContainer", {
      config: ContainerConfig.fromPartial({ image: "missing" }),
    });
    const err = await expectContainerRejection(call, "notFound", /image missing not found/);
    expect(err.hint).toBe("load it");
  });

  it("reports an unimplemented method as unsupported", async () => {
    const c = await serve();
    await expectContainerRejection(c.unary("listImages", {}), "unsupported");
  });

  it("enforces a deadline", async () => {
    const c = await serve();
    await expectContainerRejection(c.unary("listContainers", { all: true }, { deadline: Date.now() + 100 }), "timeout");
  });

  it("streams requests to a client-streaming method", async () => {
    const c = await serve();
    const res = await new Promise<LoadImageResponse>((resolve, reject) => {
      let got: LoadImageResponse | undefined;
      const s = c.stream("loadImage", { message: (r) => (got = r), end: () => resolve(got!), error: reject });
      for (let i = 0; i < 64; i++) s.write({ chunk: Buffer.alloc(64 * 1024, i) });
      s.end();
    });
    expect(res.images[0]?.size).toBe(BigInt(64 * 64 * 1024));
  });

  it("delivers every message of a paused server stream before its end", async () => {
    const c = await serve();
    let bytes = 0;
    await new Promise<void>((resolve, reject) => {
      const s = c.stream("saveImages", {
        // A slow consumer: the status arrives while the call is paused.
        message: (r) => {
          bytes += r.data.length;
          s.pause();
          setTimeout(() => s.resume(), 2);
        },
        end: resolve,
        error: reject,
      });
      s.write({ references: [], format: "" });
      s.end();
    });
    expect(bytes).toBe(64 * 64 * 1024);
  });

  it("carries a bidirectional stream to its end", async () => {
    const c = await serve();
    const out: string[] = [];
    let exitCode: number | undefined;
    await new Promise<void>((resolve, reject) => {
      const s = c.stream("attach", {
        message: (r) => {
          if (r.stdout) out.push(Buffer.from(r.stdout).toString());
          if (r.exitCode !== undefined) exitCode = r.exitCode;
        },
        end: resolve,
        error: reject,
      });
      s.write({ open: "x" });
      s.write({ stdin: Buffer.from("a") });
      s.write({ stdin: Buffer.from("b") });
      s.write({ closeStdin: true });
    });
    expect(out.join("")).toBe("ab");
    expect(exitCode).toBe(3);
  });

  it("fails with unavailable when nothing listens", async () => {
    client = createHttp2Client(ContainerServiceDefinition, join(dir, "nobody.sock"));
    await expectContainerRejection(client.unary("ping", {}), "unavailable", /ENOENT/);
  });
});
