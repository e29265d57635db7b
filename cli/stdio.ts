// The local end of a container's stdio, shared by run, start -a, exec and
// logs: output with backpressure onto the call, stdin with backpressure into
// it; and archives (export, image save) written to stdout or a file.
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ContainerError } from "../lib/errors/index.js";
import type { CallStream } from "../lib/grpc/http2-client.js";

/** Writes one output chunk; while `out` is full, the call stops delivering. */
export function writeOutput(out: NodeJS.WriteStream, chunk: Uint8Array, call: Pick<CallStream<unknown>, "pause" | "resume">): void {
  if (!out.write(chunk)) {
    call.pause();
    out.once("drain", () => call.resume());
  }
}

/** Sends this process's stdin down `call` as `{ stdin }` messages, then `{ closeStdin: true }` at its end. */
export function forwardStdin<Req>(call: CallStream<Req>, message: (chunk: Buffer) => Req, closed: Req): void {
  process.stdin.on("data", (chunk: Buffer) => {
    if (!call.write(message(chunk))) {
      process.stdin.pause();
      call.onceDrain(() => process.stdin.resume());
    }
  });
  process.stdin.on("end", () => call.write(closed));
}

/** Refuses before anything starts when an archive would go to a terminal. */
export function checkArchiveOutput(output: string | undefined): void {
  if (output === undefined && process.stdout.isTTY) {
    throw new ContainerError("invalidArgument", "refusing to write an archive to a terminal", { hint: "use -o FILE or redirect stdout" });
  }
}

/** Writes an archive to `output`, or to stdout without one. A file is written beside its name and renamed: a failure leaves no partial file. */
export async function writeArchive(archive: Readable, output: string | undefined): Promise<void> {
  if (output === undefined) {
    await pipeline(archive, process.stdout, { end: false });
    return;
  }
  const tmp = `${output}.partial-${process.pid}`;
  try {
    await pipeline(archive, createWriteStream(tmp, { mode: 0o644 }));
    await rename(tmp, output);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
