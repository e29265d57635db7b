import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Server, type ServerDuplexStream } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ContainerServiceDefinition, type AttachRequest, type AttachResponse } from "../../apiserver/api/gen/apiserver.js";
import { ContainerError } from "../../lib/errors/index.js";
import { bindUnix, grpcService, toGrpcError, unary, type ServerOf } from "../../lib/grpc/index.js";
import { run, startFailureStatus, type RunOptions } from "./run.js";

describe("startFailureStatus", () => {
  it.each([
    [new ContainerError("notFound", 'executable "nosuch" not found in $PATH'), 127],
    [new ContainerError("notFound", "exec /script: no such file or directory"), 127],
    [new ContainerError("notFound", 'user "bob" not found in /etc/passwd'), 125],
    [new ContainerError("notFound", "working directory /nope: no such file or directory"), 125],
    [new ContainerError("notFound", "no such container: c1"), 125],
    [new ContainerError("invalidArgument", "cap-add: unknown capability FOO"), 125],
  ])("%s -> %d", (err, status) => {
    expect(startFailureStatus(err)).toBe(status);
  });
});

describe("run, when the attach stream fails before the start does", () => {
  // A helper that dies during the start fails both calls; the attach stream's
  // error must not be an unhandled rejection that crashes the CLI.
  it("ends with the start's one error", async () => {
    const dir = await mkdtemp(join(tmpdir(), "run-attach-"));
    const server = new Server();
    const died = (): ContainerError => new ContainerError("unavailable", "the runtime helper of container c1 died");
    const handlers: Partial<ServerOf<typeof ContainerServiceDefinition>> = {
      createContainer: unary(async () => ({ id: "c1" })),
      startContainer: unary(async () => {
        await new Promise((r) => setTimeout(r, 200));
        throw died();
      }),
      attach: (call: ServerDuplexStream<AttachRequest, AttachResponse>) => {
        call.once("data", () => call.emit("error", toGrpcError(died())));
      },
    };
    server.addService(...grpcService(ContainerServiceDefinition, handlers as ServerOf<typeof ContainerServiceDefinition>));
    await bindUnix(server, join(dir, "apiserver.sock"));
    const before = process.env.CONTAINER_RUNTIME_DIR;
    process.env.CONTAINER_RUNTIME_DIR = dir;
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const opts: RunOptions = { env: [], envFile: [], label: [], tmpfs: [], ulimit: [], capAdd: [], capDrop: [], securityOpt: [] };
      await expect(run("demo", ["true"], opts)).rejects.toThrow("the runtime helper of container c1 died");
      await new Promise((r) => setTimeout(r, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      if (before === undefined) delete process.env.CONTAINER_RUNTIME_DIR;
      else process.env.CONTAINER_RUNTIME_DIR = before;
      server.forceShutdown();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
