// The local end of a container's stdio, shared by run, start -a, exec and
// logs: output with backpressure onto the call, stdin with backpressure into it.
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
