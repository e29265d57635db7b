// `container run|create|start`: create, attach, start, relay stdio and
// signals, and exit with the container's status (Docker's codes: 125 when the
// runtime fails, 127 when the command is not in the image).
import { access, readFile, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Command } from "commander";
import { COMMAND_NOT_FOUND, ContainerError, RUN_FAILED, startFailureStatus } from "../../lib/errors/index.js";
import type { AttachRequest, AttachResponse, ContainerConfig } from "../../apiserver/api/gen/apiserver.js";
import type { CallStream } from "../../lib/grpc/http2-client.js";
import { connect, explain, request, type ApiClient } from "../client.js";
import { forwardStdin, writeOutput } from "../stdio.js";
import { checkTty, terminalSize, useTerminal } from "../terminal.js";
import {
  parseBytes,
  parseCpus,
  parseEnv,
  parseEnvFile,
  parseLabels,
  parseMemoryMiB,
  parseSecurityOpts,
  parseTmpfs,
  parseUlimit,
  parseUser,
  signalNumber,
} from "../parse.js";

export interface CreateOptions {
  rm?: boolean;
  env: string[];
  envFile: string[];
  workdir?: string;
  interactive?: boolean;
  name?: string;
  cpus?: string;
  memory?: string;
  label: string[];
  entrypoint?: string;
  readOnly?: boolean;
  cidfile?: string;
  user?: string;
  uid?: string;
  gid?: string;
  tty?: boolean;
  kernel?: string;
  init?: boolean;
  capAdd: string[];
  capDrop: string[];
  ulimit: string[];
  tmpfs: string[];
  shmSize?: string;
  platform?: string;
  securityOpt: string[];
}

export interface RunOptions extends CreateOptions {
  detach?: boolean;
}

/** Exit statuses of a failed run, as Docker reports them (lib/errors). */
export { COMMAND_NOT_FOUND, RUN_FAILED, startFailureStatus };

async function readEnvFiles(paths: string[]): Promise<string[]> {
  const entries: string[] = [];
  for (const path of paths) {
    const text = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
      throw new ContainerError("invalidArgument", `cannot read env file ${path}: ${err.code ?? err.message}`);
    });
    entries.push(...parseEnvFile(text, path));
  }
  return entries;
}

/** The create request for the flags; -e entries win over --env-file ones, as in Docker. */
export async function containerConfig(image: string, command: string[], opts: CreateOptions): Promise<ContainerConfig> {
  return {
    name: opts.name ?? "",
    image,
    command,
    env: [...(await readEnvFiles(opts.envFile)), ...parseEnv(opts.env)],
    workdir: opts.workdir ?? "",
    interactive: Boolean(opts.interactive),
    autoRemove: Boolean(opts.rm),
    cpus: opts.cpus === undefined ? 0 : parseCpus(opts.cpus),
    memoryMib: BigInt(opts.memory === undefined ? 0 : parseMemoryMiB(opts.memory)),
    labels: parseLabels(opts.label),
    ...(opts.entrypoint === undefined ? {} : { entrypoint: opts.entrypoint }),
    readOnly: Boolean(opts.readOnly),
    user: parseUser(opts),
    tty: Boolean(opts.tty),
    kernel: opts.kernel === undefined ? "" : resolve(opts.kernel),
    init: Boolean(opts.init),
    capAdd: opts.capAdd,
    capDrop: opts.capDrop,
    ulimits: opts.ulimit.map((u) => {
      const l = parseUlimit(u);
      return { type: l.type, soft: BigInt(l.soft), hard: BigInt(l.hard) };
    }),
    tmpfs: opts.tmpfs.map(parseTmpfs),
    shmSizeBytes: BigInt(opts.shmSize === undefined ? 0 : parseBytes(opts.shmSize, "shm size")),
    platform: opts.platform ?? "",
    noNewPrivileges: parseSecurityOpts(opts.securityOpt).noNewPrivileges,
  };
}

/** Docker refuses a cidfile that exists, before anything is created. */
async function checkCidfile(path: string | undefined): Promise<void> {
  if (path === undefined) return;
  const exists = await access(path).then(() => true, () => false);
  if (exists) throw new ContainerError("exists", `container id file ${path} already exists`, { hint: "remove it or name another file" });
}

async function create(client: ApiClient, image: string, command: string[], opts: CreateOptions): Promise<{ id: string; config: ContainerConfig }> {
  checkTty(Boolean(opts.interactive), Boolean(opts.tty));
  const config = await containerConfig(image, command, opts);
  await checkCidfile(opts.cidfile);
  const { id } = await request(client, "createContainer", { config });
  if (opts.cidfile !== undefined) await writeFile(opts.cidfile, id, { flag: "wx" });
  return { id, config };
}

/** Streams stdio until the container's exit status arrives. */
function attach(client: ApiClient, id: string, interactive: boolean): { exit: Promise<number>; stream: CallStream<AttachRequest> } {
  let stream!: CallStream<AttachRequest>;
  const exit = new Promise<number>((resolve, reject) => {
    let code: number | undefined;
    stream = client.stream("attach", {
      message: (res: AttachResponse) => {
        if (res.stdout) writeOutput(process.stdout, res.stdout, stream);
        else if (res.stderr) writeOutput(process.stderr, res.stderr, stream);
        else if (res.exitCode !== undefined) code = res.exitCode;
      },
      end: () =>
        code === undefined ? reject(new ContainerError("internal", "the container's output ended without an exit status")) : resolve(code),
      error: (err) => reject(explain(err)),
    });
  });
  // The stream may fail while the caller still awaits the start (a helper
  // that dies fails both): handled here, so that is no unhandled rejection;
  // awaiting `exit` still throws.
  void exit.catch(() => undefined);
  stream.write({ open: id });
  if (interactive) forwardStdin(stream, (stdin) => ({ stdin }), { closeStdin: true });
  return { exit, stream };
}

/** Attaches, starts, relays signals (or, with a terminal, raw keys and size changes), and resolves with the exit status. */
async function startAttached(client: ApiClient, id: string, interactive: boolean, tty: boolean): Promise<number> {
  const { exit, stream } = attach(client, id, interactive);
  const forward = (signal: NodeJS.Signals): void => void stream.write({ signal: signalNumber(signal) });
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const restore = tty ? useTerminal((size) => stream.write({ resize: size })) : () => undefined;
  try {
    try {
      await request(client, "startContainer", { id, size: tty ? terminalSize() : undefined });
    } catch (err) {
      // The container is ended (and, with --rm, removed) by the service; wait for that.
      await exit.catch(() => undefined);
      const e = err instanceof ContainerError ? err : explain(err);
      throw Object.assign(e, { exitCode: startFailureStatus(e) });
    }
    return await exit;
  } finally {
    restore();
    process.stdin.pause();
  }
}

export async function run(image: string, command: string[], opts: RunOptions): Promise<number> {
  const client = connect();
  try {
    const { id, config } = await create(client, image, command, opts);
    if (opts.detach) {
      await request(client, "startContainer", { id, size: undefined });
      process.stdout.write(`${id}\n`);
      return 0;
    }
    return await startAttached(client, id, config.interactive, config.tty);
  } finally {
    client.close();
  }
}

function withCreateOptions(cmd: Command): Command {
  const list = (v: string, acc: string[]): string[] => [...acc, v];
  return cmd
    .argument("<image>", "image to run")
    .argument("[command...]", "command and arguments (default: the image's)")
    .option("--rm", "remove the container when it exits")
    .option("-e, --env <KEY=VALUE>", "set an environment variable (repeatable)", list, [] as string[])
    .option("--env-file <file>", "read environment variables from a file (repeatable)", list, [] as string[])
    .option("-w, --workdir <dir>", "working directory inside the container")
    .option("-i, --interactive", "keep stdin open and connect it to the container")
    .option("-t, --tty", "give the process a terminal (with -i: an interactive shell)")
    .option("--name <name>", "name the container")
    .option("-c, --cpus <n>", "number of virtual CPUs")
    .option("-m, --memory <size>", "memory, e.g. 512M or 2G")
    .option("-l, --label <KEY=VALUE>", "set a label (repeatable)", list, [] as string[])
    .option("--entrypoint <cmd>", "replace the image's entrypoint (\"\" clears it)")
    .option("--read-only", "mount the container's root filesystem read-only")
    .option("-u, --user <user>", "run as name|uid[:group|gid]")
    .option("--uid <uid>", "run as this user id")
    .option("--gid <gid>", "run with this group id")
    .option("--cidfile <file>", "write the container id to a file")
    .option("-k, --kernel <path>", "boot this guest kernel instead of the configured one")
    .option("--init", "run a tiny init as PID 1 that forwards signals and reaps zombies")
    .option("--cap-add <cap>", "add a Linux capability, or ALL (repeatable)", list, [] as string[])
    .option("--cap-drop <cap>", "drop a Linux capability, or ALL (repeatable)", list, [] as string[])
    .option("--ulimit <type=soft[:hard]>", "set a resource limit, e.g. nofile=1024:2048 (repeatable)", list, [] as string[])
    .option("--tmpfs <path[:options]>", "mount a tmpfs, e.g. /run:size=64m (repeatable)", list, [] as string[])
    .option("--shm-size <size>", "size of /dev/shm (default 64M)")
    .option("--security-opt <opt>", "no-new-privileges: setuid bits and file capabilities grant nothing (repeatable)", list, [] as string[])
    .option("--platform <os/arch>", "run the image of this platform, e.g. linux/arm64 (another architecture is emulated)")
    .passThroughOptions();
}

/** Docker's convention: 125 when the runtime, not the command, failed. */
function runFailure(err: unknown): ContainerError {
  return Object.assign(err instanceof ContainerError ? err : explain(err), {
    exitCode: (err as { exitCode?: number }).exitCode ?? RUN_FAILED,
  });
}

export function registerRun(program: Command): void {
  withCreateOptions(program.command("run").description("run a command in a new container"))
    .option("-d, --detach", "run in the background and print the container id")
    .action(async (image: string, command: string[], opts: RunOptions) => {
      if (opts.detach && opts.interactive) {
        throw new ContainerError("invalidArgument", "--detach and --interactive cannot be used together");
      }
      try {
        process.exitCode = await run(image, command, opts);
      } catch (err) {
        throw runFailure(err);
      }
    });

  withCreateOptions(program.command("create").description("create a container without starting it"))
    .action(async (image: string, command: string[], opts: CreateOptions) => {
      const client = connect();
      try {
        process.stdout.write(`${(await create(client, image, command, opts)).id}\n`);
      } finally {
        client.close();
      }
    });

  program
    .command("start")
    .description("start a created container")
    .argument("<container>", "id, id prefix or name")
    .option("-a, --attach", "attach to its output and exit with its status")
    .option("-i, --interactive", "connect stdin (with --attach)")
    .action(async (ref: string, opts: { attach?: boolean; interactive?: boolean }) => {
      const client = connect();
      try {
        if (!opts.attach) {
          await request(client, "startContainer", { id: ref, size: undefined });
          process.stdout.write(`${ref}\n`);
          return;
        }
        process.exitCode = await startAttached(client, ref, Boolean(opts.interactive), false);
      } catch (err) {
        throw opts.attach ? runFailure(err) : err;
      } finally {
        client.close();
      }
    });
}
