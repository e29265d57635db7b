// `container ls|rm|kill`.
import type { Command } from "commander";
import { ContainerError } from "../../lib/errors/index.js";
import { connect, request } from "../client.js";
import { parseSignal } from "../parse.js";
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
      if (opts.format !== "json" && opts.format !== "table") {
        throw new ContainerError("invalidArgument", `unknown format "${opts.format}"`, { hint: "use json or table" });
      }
      const client = connect();
      try {
        const { containers } = await request(client, "listContainers", { all: Boolean(opts.all) });
        if (opts.format === "json") process.stdout.write(renderJson(containers));
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
    .argument("<container...>", "ids, id prefixes or names")
    .option("-f, --force", "stop running containers first")
    .action(async (refs: string[], opts: { force?: boolean }) => {
      const client = connect();
      try {
        for (const id of refs) {
          await request(client, "deleteContainer", { id, force: Boolean(opts.force) });
          process.stdout.write(`${id}\n`);
        }
      } finally {
        client.close();
      }
    });
  program
    .command("kill")
    .description("send a signal to running containers")
    .argument("<container...>", "ids, id prefixes or names")
    .option("-s, --signal <signal>", "signal name or number", "KILL")
    .action(async (refs: string[], opts: { signal: string }) => {
      const signal = parseSignal(opts.signal);
      const client = connect();
      try {
        for (const id of refs) {
          await request(client, "killContainer", { id, signal });
          process.stdout.write(`${id}\n`);
        }
      } finally {
        client.close();
      }
    });
}
