// The Runtime gRPC service: thin handlers over RuntimeContainer.
import { once } from "node:events";
import { PassThrough } from "node:stream";
import type { ServerDuplexStream, ServerReadableStream, ServerWritableStream, sendUnaryData } from "@grpc/grpc-js";
import { ContainerError } from "../../lib/errors/index.js";
import { unary } from "../../lib/grpc/index.js";
import { toGrpcError } from "../../lib/grpc/index.js";
import type {
  AttachRequest,
  AttachResponse,
  CopyChunk,
  CopyInRequest,
  CopyInResponse,
  CopyOutRequest,
  ExecRequest,
  ExecResponse,
  RuntimeServer,
} from "./api/gen/runtime.js";
import type { ExecHandle, RuntimeContainer } from "./container.js";

/** Exec: `start` first; output and the exit status go back; the call ends with the exit (or after `started` when detached). */
function exec(container: RuntimeContainer, stream: ServerDuplexStream<ExecRequest, ExecResponse>): void {
  let handle: Promise<ExecHandle> | undefined;
  let ended = false;
  const end = (msg?: ExecResponse): void => {
    if (ended) return;
    ended = true;
    if (msg) stream.write(msg);
    stream.end();
  };
  stream.on("data", (req: ExecRequest) => {
    if (!handle) {
      if (!req.start) {
        stream.emit("error", toGrpcError(new ContainerError("invalidArgument", "exec must start with `start`")));
        return;
      }
      const spec = req.start;
      handle = container.exec({ ...spec, size: spec.size ?? { rows: 0, cols: 0 } }, {
        stdout: (chunk) => !ended && stream.write({ stdout: chunk }),
        stderr: (chunk) => !ended && stream.write({ stderr: chunk }),
        exit: (exitCode) => end({ exitCode }),
      });
      handle.then(
        (h) => {
          if (ended) return;
          stream.write({ started: h.pid });
          if (spec.detach) end();
        },
        (err: unknown) => {
          ended = true;
          stream.emit("error", toGrpcError(err));
        },
      );
      return;
    }
    void handle.then((h) => {
      if (req.stdin) h.writeStdin(Buffer.from(req.stdin));
      else if (req.closeStdin) h.closeStdin();
      else if (req.signal) void h.kill(req.signal).catch(() => undefined);
      else if (req.resize) void h.resize(req.resize).catch(() => undefined);
    }, () => undefined);
  });
  stream.on("error", () => undefined);
}

export function runtimeService(container: RuntimeContainer, helperPid: number): RuntimeServer {
  return {
    state: unary(async () => {
      const exit = container.phase() === "exited" || container.phase() === "stopped" ? await container.wait() : undefined;
      return {
        state: container.phase(),
        helperPid,
        vmPids: container.vmPids(),
        exitCode: exit?.exitCode ?? 0,
        processPid: container.processPid(),
      };
    }),
    start: unary(async (req) => {
      if (req.size) await container.resize(req.size);
      return { processPid: await container.start() };
    }),
    stats: unary(async () => {
      const s = await container.stats();
      return {
        cpuUsageUsec: s.cpuUsageUsec,
        memoryCurrentBytes: s.memoryCurrentBytes,
        memoryMaxBytes: s.memoryMaxBytes,
        pidsCurrent: s.pidsCurrent,
        uptimeNs: s.uptimeNs,
        ioReadBytes: s.ioReadBytes,
        ioWriteBytes: s.ioWriteBytes,
      };
    }),
    wait: unary(async () => ({ exitCode: (await container.wait()).exitCode })),
    kill: unary(async (req) => {
      await container.kill(req.signal);
      return {};
    }),
    stop: unary(async (req) => {
      await container.stop(req.force);
      return {};
    }),
    exec: (stream: ServerDuplexStream<ExecRequest, ExecResponse>) => exec(container, stream),
    copyOut: (call: ServerWritableStream<CopyOutRequest, CopyChunk>) => {
      void (async () => {
        for await (const data of container.copyOut(call.request.path)) {
          if (!call.write({ data })) await once(call, "drain");
        }
        call.end();
      })().catch((err: unknown) => call.emit("error", toGrpcError(err)));
    },
    copyIn: (call: ServerReadableStream<CopyInRequest, CopyInResponse>, callback: sendUnaryData<CopyInResponse>) => {
      const body = new PassThrough();
      let started = false;
      call.on("data", (req: CopyInRequest) => {
        if (!started) {
          started = true;
          if (!req.start) return callback(toGrpcError(new ContainerError("invalidArgument", "copy-in must start with `start`")));
          container.copyIn(req.start.path, req.start.contents, body).then(
            () => callback(null, {}),
            (err: unknown) => {
              body.resume();
              callback(toGrpcError(err));
            },
          );
        } else if (req.data && !body.write(req.data)) {
          call.pause();
          body.once("drain", () => call.resume());
        }
      });
      call.on("end", () => body.end());
      call.on("error", (err) => body.destroy(err));
    },
    attach: (stream: ServerDuplexStream<AttachRequest, AttachResponse>) => {
      let detach = (): void => undefined;
      stream.on("data", (req: AttachRequest) => {
        if (req.open) {
          detach = container.attach({
            stdout: (chunk) => stream.write({ stdout: chunk }),
            stderr: (chunk) => stream.write({ stderr: chunk }),
            exit: (exitCode) => {
              stream.write({ exitCode });
              stream.end();
            },
          });
        } else if (req.stdin) {
          container.writeStdin(req.stdin);
        } else if (req.closeStdin) {
          container.closeStdin();
        } else if (req.resize) {
          void container.resize(req.resize).catch(() => undefined);
        }
      });
      stream.on("error", () => detach());
      stream.on("cancelled", () => detach());
      stream.on("end", () => undefined);
      stream.on("close", () => detach());
    },
  };
}
