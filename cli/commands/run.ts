// `container run`: create, attach, start, relay stdio and signals, and exit
// with the container's status (Docker's codes: 125 when the runtime fails,
// 127 when the command is not in the image).
import type { Command } from "commander";
import { ContainerError } from "../../lib/errors/index.js";
import type { AttachRequest, AttachResponse, ContainerConfig } from "../../apiserver/api/gen/apiserver.js";
import type { CallStream } from "../../lib/grpc/http2-client.js";
import { connect, explain, request, type ApiClient } from "../client.js";
import { parseCpus, parseEnv, parseMemoryMiB, signalNumber } from "../parse.js";

export interface RunOptions {
  rm?: boolean;
  detach?: boolean;
  env: string[];
  workdir?: string;
  interactive?: boolean;
  name?: string;
  cpus?: string;
  memory?: string;
}

/** Exit statuses of a failed run, as Docker reports them. */
export const RUN_FAILED = 125;
export const COMMAND_NOT_FOUND = 127;

export function containerConfig(image: string, command: string[], opts: RunOptions): ContainerConfig {
  return {
    name: opts.name ?? "",
    image,
    command,
    env: parseEnv(opts.env),
    workdir: opts.workdir ?? "",
    interactive: Boolean(opts.interactive),
    autoRemove: Boolean(opts.rm),
    cpus: opts.cpus === undefined ? 0 : parseCpus(opts.cpus),
    memoryMib: BigInt(opts.memory === undefined ? 0 : parseMemoryMiB(opts.memory)),
  };
}

function write(out: NodeJS.WriteStream, chunk: Buffer, stream: CallStream<AttachRequest>): void {
  if (!out.write(chunk)) {
    stream.pause();
    out.once("drain", () => stream.resume());
  }
}

/** Streams stdio until the container's exit status arrives. */
function attach(client: ApiClient, id: string, interactive: boolean): { exit: Promise<number>; stream: CallStream<AttachRequest> } {
  let stream!: CallStream<AttachRequest>;
  const exit = new Promise<number>((resolve, reject) => {
    let code: number | undefined;
    stream = client.stream("attach", {
      message: (res: AttachResponse) => {
        if (res.stdout) write(process.stdout, res.stdout, stream);
        else if (res.stderr) write(process.stderr, res.stderr, stream);
        else if (res.exitCode !== undefined) code = res.exitCode;
      },
      end: () =>
        code === undefined ? reject(new ContainerError("internal", "the container's output ended without an exit status")) : resolve(code),
      error: (err) => reject(explain(err)),
    });
  });
  stream.write({ open: id });
  if (interactive) {
    process.stdin.on("data", (chunk: Buffer) => {
      if (!stream.write({ stdin: chunk })) {
        process.stdin.pause();
        stream.onceDrain(() => process.stdin.resume());
      }
    });
    process.stdin.on("end", () => stream.write({ closeStdin: true }));
  }
  return { exit, stream };
}

export async function run(image: string, command: string[], opts: RunOptions): Promise<number> {
  const config = containerConfig(image, command, opts);
  const client = connect();
  try {
    const { id } = await request(client, "createContainer", { config });
    if (opts.detach) {
      await request(client, "startContainer", { id });
      process.stdout.write(`${id}\n`);
      return 0;
    }
    const { exit, stream } = attach(client, id, config.interactive);
    const forward = (signal: NodeJS.Signals): void => void stream.write({ signal: signalNumber(signal) });
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    try {
      await request(client, "startContainer", { id });
    } catch (err) {
      // The container is ended (and, with --rm, removed) by the service; wait for that.
      await exit.catch(() => undefined);
      const e = err instanceof ContainerError ? err : explain(err);
      throw Object.assign(e, { exitCode: e.code === "notFound" ? COMMAND_NOT_FOUND : RUN_FAILED });
    }
    const code = await exit;
    process.stdin.pause();
    return code;
  } finally {
    client.close();
  }
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("run a command in a new container")
    .argument("<image>", "image to run")
    .argument("[command...]", "command and arguments (default: the image's)")
    .option("--rm", "remove the container when it exits")
    .option("-d, --detach", "run in the background and print the container id")
    .option("-e, --env <KEY=VALUE>", "set an environment variable (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option("-w, --workdir <dir>", "working directory inside the container")
    .option("-i, --interactive", "keep stdin open and connect it to the container")
    .option("--name <name>", "name the container")
    .option("-c, --cpus <n>", "number of virtual CPUs")
    .option("-m, --memory <size>", "memory, e.g. 512M or 2G")
    .passThroughOptions()
    .action(async (image: string, command: string[], opts: RunOptions) => {
      if (opts.detach && opts.interactive) {
        throw new ContainerError("invalidArgument", "--detach and --interactive cannot be used together");
      }
      try {
        process.exitCode = await run(image, command, opts);
      } catch (err) {
        // Docker's convention: 125 when the runtime, not the command, failed.
        throw Object.assign(err instanceof ContainerError ? err : explain(err), {
          exitCode: (err as { exitCode?: number }).exitCode ?? RUN_FAILED,
        });
      }
    });
}
