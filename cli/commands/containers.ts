// `container ls|rm|kill|stop|inspect|prune|logs`.
import type { Command } from "commander";
import { ContainerError } from "../../lib/errors/index.js";
import type { LogsRequest } from "../../apiserver/api/gen/apiserver.js";
import type { CallStream } from "../../lib/grpc/http2-client.js";
import { connect, explain, request, type ApiClient } from "../client.js";
import { writeOutput } from "../stdio.js";
import { parseCount, parseFormat, parseSeconds, parseSignal } from "../parse.js";
import { formatAgo, renderJson, renderTable } from "../render/table.js";

function status(state: string, exitCode: number): string {
  return state === "stopped" ? `exited (${exitCode})` : state;
}

export function registerContainers(program: Command): void {
  program
    .command("list")
    .alias("ls")
    .description("list containers")
    .option("-a, --all", "include stopped containers")
    .option("-q, --quiet", "only ids")
    .option("--format <format>", "json or table", "table")
    .action(async (opts: { all?: boolean; quiet?: boolean; format: string }) => {
      const format = parseFormat(opts.format);
      const client = connect();
      try {
        const { containers } = await request(client, "listContainers", { all: Boolean(opts.all) });
        if (format === "json") process.stdout.write(renderJson(containers));
        else if (opts.quiet) for (const c of containers) process.stdout.write(`${c.id}\n`);
        else {
          const rows = containers.map((c) => [c.id.slice(0, 12), c.name, c.image, c.command.join(" "), formatAgo(Number(c.createdAtMs)), status(c.state, c.exitCode)]);
          process.stdout.write(renderTable(["ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS"], rows));
        }
      } finally {
        client.close();
      }
    });
  program
    .command("delete")
    .alias("rm")
    .description("remove containers")
    .argument("[container...]", "ids, id prefixes or names")
    .option("-a, --all", "every container")
    .option("-f, --force", "stop running containers first")
    .action(async (refs: string[], opts: { all?: boolean; force?: boolean }) => {
      await eachContainer(refs, opts.all, async (client, id) => request(client, "deleteContainer", { id, force: Boolean(opts.force) }), true);
    });
  program
    .command("kill")
    .description("send a signal to running containers")
    .argument("[container...]", "ids, id prefixes or names")
    .option("-a, --all", "every running container")
    .option("-s, --signal <signal>", "signal name or number", "KILL")
    .action(async (refs: string[], opts: { all?: boolean; signal: string }) => {
      const signal = parseSignal(opts.signal);
      await eachContainer(refs, opts.all, async (client, id) => request(client, "killContainer", { id, signal }), false);
    });
  program
    .command("stop")
    .description("stop running containers: a signal, then SIGKILL after a timeout")
    .argument("[container...]", "ids, id prefixes or names")
    .option("-a, --all", "every running container")
    .option("-s, --signal <signal>", "signal name or number", "TERM")
    .option("-t, --time <seconds>", "seconds to wait before SIGKILL", "5")
    .action(async (refs: string[], opts: { all?: boolean; signal: string; time: string }) => {
      const signal = parseSignal(opts.signal);
      const timeoutSeconds = parseSeconds(opts.time);
      await eachContainer(refs, opts.all, async (client, id) => request(client, "stopContainer", { id, signal, timeoutSeconds }), false);
    });
  program
    .command("inspect")
    .description("show containers' full records as JSON")
    .argument("<container...>", "ids, id prefixes or names")
    .action(async (refs: string[]) => {
      const client = connect();
      try {
        const { containers } = await request(client, "inspectContainers", { ids: refs });
        process.stdout.write(renderJson(containers));
      } finally {
        client.close();
      }
    });
  program
    .command("prune")
    .description("remove every stopped container")
    .action(async () => {
      const client = connect();
      try {
        for (const id of (await request(client, "pruneContainers", {})).ids) process.stdout.write(`${id}\n`);
      } finally {
        client.close();
      }
    });
  program
    .command("logs")
    .description("show a container's output (kept after it exits)")
    .argument("<container>", "id, id prefix or name")
    .option("-f, --follow", "keep printing new output until the container stops")
    .option("-n, --tail <lines>", "only the last N lines")
    .option("--boot", "the VM's console and guest agent log instead")
    .action(async (ref: string, opts: { follow?: boolean; tail?: string; boot?: boolean }) => {
      const tail = opts.tail === undefined ? 0 : parseCount(opts.tail);
      const client = connect();
      try {
        await new Promise<void>((resolve, reject) => {
          const stream: CallStream<LogsRequest> = client.stream(
            "logs",
            {
              message: (res) => {
                if (res.stdout) writeOutput(process.stdout, res.stdout, stream);
                else if (res.stderr) writeOutput(process.stderr, res.stderr, stream);
              },
              end: resolve,
              error: (err) => reject(explain(err)),
            },
          );
          stream.write({ id: ref, follow: Boolean(opts.follow), tail, boot: Boolean(opts.boot) });
          stream.end();
          process.once("SIGINT", () => {
            stream.cancel();
            resolve();
          });
        });
      } finally {
        client.close();
      }
    });
}

/**
 * Runs `fn` for each named container, or with `all` for every container
 * (`stopped` too when `includeStopped`), printing each id done. Every
 * container is tried; the first failure is thrown at the end.
 */
async function eachContainer(
  refs: string[],
  all: boolean | undefined,
  fn: (client: ApiClient, id: string) => Promise<unknown>,
  includeStopped: boolean,
): Promise<void> {
  if (all && refs.length > 0) throw new ContainerError("invalidArgument", "name containers or use --all, not both");
  if (!all && refs.length === 0) throw new ContainerError("invalidArgument", "no container named", { hint: "name one or more, or use --all" });
  const client = connect();
  try {
    const ids = all ? (await request(client, "listContainers", { all: includeStopped })).containers.map((c) => c.id) : refs;
    let failure: unknown;
    for (const id of ids) {
      try {
        await fn(client, id);
        process.stdout.write(`${id}\n`);
      } catch (err) {
        failure ??= err;
        if (ids.length > 1) process.stderr.write(`Error: ${(err as Error).message}\n`);
      }
    }
    if (failure !== undefined) throw failure;
  } finally {
    client.close();
  }
}
