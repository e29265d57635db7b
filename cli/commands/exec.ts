// `container exec`: run another process in a running container, relay its
// stdio and signals, and exit with its status (127 when the command is not in
// the image, 125 when the runtime failed).
import type { Command } from "commander";
import { ContainerError } from "../../lib/errors/index.js";
import type { ExecRequest } from "../../apiserver/api/gen/apiserver.js";
import type { CallStream } from "../../lib/grpc/http2-client.js";
import { connect, explain } from "../client.js";
import { forwardStdin, writeOutput } from "../stdio.js";
import { checkTty, terminalSize, useTerminal } from "../terminal.js";
import { parseEnv, parseUser, signalNumber } from "../parse.js";
import { startFailureStatus } from "./run.js";

interface ExecOptions {
  detach?: boolean;
  interactive?: boolean;
  env: string[];
  workdir?: string;
  user?: string;
  tty?: boolean;
}

async function exec(container: string, args: string[], opts: ExecOptions): Promise<number> {
  checkTty(Boolean(opts.interactive), Boolean(opts.tty));
  let restore = (): void => undefined;
  const client = connect();
  try {
    return await new Promise<number>((resolve, reject) => {
      let code: number | undefined;
      let stream!: CallStream<ExecRequest>;
      stream = client.stream("exec", {
        message: (res) => {
          if (res.stdout) writeOutput(process.stdout, res.stdout, stream);
          else if (res.stderr) writeOutput(process.stderr, res.stderr, stream);
          else if (res.exitCode !== undefined) code = res.exitCode;
        },
        end: () => {
          if (opts.detach) resolve(0);
          else if (code === undefined) reject(new ContainerError("internal", "the process's output ended without an exit status"));
          else resolve(code);
        },
        error: (err) => {
          const e = explain(err);
          reject(Object.assign(e, { exitCode: startFailureStatus(e) }));
        },
      });
      stream.write({
        start: {
          container,
          args,
          env: parseEnv(opts.env),
          workdir: opts.workdir ?? "",
          user: parseUser({ user: opts.user }),
          interactive: Boolean(opts.interactive),
          detach: Boolean(opts.detach),
          tty: Boolean(opts.tty),
          size: opts.tty ? terminalSize() : undefined,
        },
      });
      if (opts.tty && !opts.detach) restore = useTerminal((size) => stream.write({ resize: size }));
      const forward = (signal: NodeJS.Signals): void => void stream.write({ signal: signalNumber(signal) });
      process.on("SIGINT", forward);
      process.on("SIGTERM", forward);
      if (opts.interactive && !opts.detach) forwardStdin(stream, (stdin) => ({ stdin }), { closeStdin: true });
    });
  } finally {
    restore();
    process.stdin.pause();
    client.close();
  }
}

export function registerExec(program: Command): void {
  program
    .command("exec")
    .description("run a command in a running container")
    .argument("<container>", "id, id prefix or name")
    .argument("<command...>", "command and arguments")
    .option("-d, --detach", "run in the background")
    .option("-i, --interactive", "keep stdin open and connect it to the process")
    .option("-t, --tty", "give the process a terminal")
    .option("-e, --env <KEY=VALUE>", "set an environment variable (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option("-w, --workdir <dir>", "working directory inside the container")
    .option("-u, --user <user>", "run as name|uid[:group|gid]")
    .passThroughOptions()
    .action(async (container: string, command: string[], opts: ExecOptions) => {
      if (opts.detach && opts.interactive) {
        throw new ContainerError("invalidArgument", "--detach and --interactive cannot be used together");
      }
      process.exitCode = await exec(container, command, opts);
    });
}
