// The Runtime gRPC service: thin handlers over RuntimeContainer.
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { unary } from "../../lib/grpc/index.js";
import type { AttachRequest, AttachResponse, RuntimeServer } from "./api/gen/runtime.js";
import type { RuntimeContainer } from "./container.js";

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
    start: unary(async () => ({ processPid: await container.start() })),
    wait: unary(async () => ({ exitCode: (await container.wait()).exitCode })),
    kill: unary(async (req) => {
      await container.kill(req.signal);
      return {};
    }),
    stop: unary(async (req) => {
      await container.stop(req.force);
      return {};
    }),
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
        }
      });
      stream.on("error", () => detach());
      stream.on("cancelled", () => detach());
      stream.on("end", () => undefined);
      stream.on("close", () => detach());
    },
  };
}
