// `container cp` and `container export`: tar streams to and from a running
// container (the agent's CopyOut/CopyIn, through the apiserver and helper).
// The host side of the archives is cli/archive.
import type { Readable } from "node:stream";
import type { Command } from "commander";
import { ContainerError } from "../../lib/errors/index.js";
import type { CopyInResponse } from "../../apiserver/api/gen/apiserver.js";
import { connect, explain, readChunks, type ApiClient } from "../client.js";
import { checkArchiveOutput, writeArchive } from "../stdio.js";

export interface CopyEnd {
  container?: string;
  path: string;
}

/**
 * One side of `cp`: `CONTAINER:PATH` names a path in a container, anything
 * else a host path (a host path with a colon can be written `./a:b`).
 */
export function parseCopyEnd(arg: string): CopyEnd {
  const colon = arg.indexOf(":");
  const ref = colon > 0 ? arg.slice(0, colon) : "";
  if (ref && /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(ref)) {
    const path = arg.slice(colon + 1);
    if (!path.startsWith("/")) {
      throw new ContainerError("invalidArgument", `the path in ${arg} must be absolute`, { hint: "write CONTAINER:/path" });
    }
    return { container: ref, path };
  }
  return { path: arg };
}

/** A readable tar stream of `path` in `container`; errors surface on the stream. */

async function copyIn(client: ApiClient, container: string, path: string, contents: boolean, tar: Readable): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let reply: CopyInResponse | undefined;
    const stream = client.stream("copyIn", {
      message: (res) => (reply = res),
      end: () => (reply ? resolve() : reject(new ContainerError("internal", "the apiserver sent no reply to the copy"))),
      error: (err) => {
        tar.destroy();
        reject(explain(err));
      },
    });
    stream.write({ start: { container, path, contents } });
    tar.on("data", (data: Buffer) => {
      if (!stream.write({ data })) {
        tar.pause();
        stream.onceDrain(() => tar.resume());
      }
    });
    tar.on("end", () => stream.end());
    tar.on("error", (err: Error) => {
      stream.cancel();
      reject(err instanceof ContainerError ? err : new ContainerError("invalidArgument", err.message));
    });
  });
}

export function registerCopy(program: Command): void {
  program
    .command("copy")
    .alias("cp")
    .description("copy files between a running container and the host (CONTAINER:PATH on one side)")
    .argument("<src>", "source: a host path, or CONTAINER:PATH")
    .argument("<dest>", "destination: a host path, or CONTAINER:PATH")
    .action(async (srcArg: string, destArg: string) => {
      const src = parseCopyEnd(srcArg);
      const dest = parseCopyEnd(destArg);
      if ((src.container === undefined) === (dest.container === undefined)) {
        throw new ContainerError("invalidArgument", "exactly one of the two paths must be in a container", { hint: "write CONTAINER:/path on one side" });
      }
      // Loaded here, not at start-up: only `cp` needs it.
      const { copiesContents, extractTo, packPath } = await import("../archive/index.js");
      const client = connect();
      try {
        if (src.container !== undefined) await extractTo(readChunks(client, "copyOut", { container: src.container, path: src.path }), dest.path);
        else await copyIn(client, dest.container!, dest.path, copiesContents(src.path), packPath(src.path));
      } finally {
        client.close();
      }
    });

  program
    .command("export")
    .description("write a running container's root filesystem as a tar archive")
    .argument("<container>", "id, id prefix or name")
    .option("-o, --output <file>", "write to a file instead of stdout")
    .action(async (container: string, opts: { output?: string }) => {
      checkArchiveOutput(opts.output);
      const client = connect();
      try {
        await writeArchive(readChunks(client, "copyOut", { container, path: "/" }), opts.output);
      } finally {
        client.close();
      }
    });
}
