// A gRPC client over node:http2 for services described by generic definitions
// (lib/grpc/definition.ts), talking to one unix socket.
//
// Written here rather than using @grpc/grpc-js because the CLI is its user:
// loading grpc-js and setting up its channel costs tens of milliseconds on
// every command, `container run`'s cold start included, and a client of one
// local socket needs none of its name resolution, load balancing or retries.
// The wire format is small: each message is a 5-byte prefix (compressed flag,
// big-endian length) and the protobuf bytes; the status comes in trailers
// (grpc-status, grpc-message) with our error code and hint as metadata.
import http2 from "node:http2";
import net from "node:net";
import { ContainerError, fromGrpcError } from "../errors/index.js";
import { methodPath, type MethodDefinition, type RequestOf, type ResponseOf, type ServiceDefinition } from "./definition.js";

/** Largest response message accepted (grpc-js's default receive limit). */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const GRPC_OK = 0;
const GRPC_CANCELLED = 1;
const GRPC_UNAVAILABLE = 14;

export interface CallOptions {
  /** Absolute deadline (ms since the epoch); the call fails with `timeout` after it. */
  deadline?: number;
}

export interface StreamHandlers<Res> {
  message(response: Res): void;
  /** The call ended with status OK. */
  end(): void;
  /** The call failed; a ContainerError rebuilt from the status, or a local one. */
  error(err: ContainerError): void;
}

export interface CallStream<Req> {
  /** Sends a request message; false means wait for "drain" before the next. */
  write(request: Req): boolean;
  onceDrain(listener: () => void): void;
  /** No more requests (half-close). */
  end(): void;
  /** Stop delivering responses until resume (back-pressure to the server). */
  pause(): void;
  resume(): void;
  /** Abandons the call; no handler runs afterwards. */
  cancel(): void;
}

export interface Http2Client<S extends ServiceDefinition> {
  unary<K extends keyof S["methods"] & string>(
    method: K,
    request: RequestOf<S["methods"][K]>,
    options?: CallOptions,
  ): Promise<ResponseOf<S["methods"][K]>>;
  /** Opens a streaming call (client- or bidi-streaming); requests go through the returned stream. */
  stream<K extends keyof S["methods"] & string>(
    method: K,
    handlers: StreamHandlers<ResponseOf<S["methods"][K]>>,
    options?: CallOptions,
  ): CallStream<RequestOf<S["methods"][K]>>;
  close(): void;
}

/** A status as a ContainerError: our code and hint from the metadata, else mapped from the gRPC code. */
function statusError(status: number, message: string, headers: http2.IncomingHttpHeaders): ContainerError {
  const one = (key: string): unknown[] => {
    const v = headers[key];
    return v === undefined ? [] : [Array.isArray(v) ? v[0] : v];
  };
  const err = Object.assign(new Error(message), { code: status, details: message, metadata: { get: one } });
  return fromGrpcError(err);
}

/** grpc-message is percent-encoded. */
function decodeMessage(raw: string | string[] | undefined): string {
  const s = Array.isArray(raw) ? raw[0] : raw;
  if (!s) return "";
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function frame(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = 0;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** Splits the response body into messages; throws on a compressed or oversized one. */
function deframer(onMessage: (bytes: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      if (pending[0] !== 0) throw new ContainerError("internal", "the server sent a compressed message, which was not asked for");
      const length = pending.readUInt32BE(1);
      if (length > MAX_MESSAGE_BYTES) throw new ContainerError("resourceExhausted", `the server sent a ${length}-byte message`);
      if (pending.length < 5 + length) return;
      onMessage(pending.subarray(5, 5 + length));
      pending = pending.subarray(5 + length);
    }
  };
}

export function createHttp2Client<S extends ServiceDefinition>(service: S, socketPath: string): Http2Client<S> {
  let session: http2.ClientHttp2Session | undefined;
  let connectError: ContainerError | undefined;

  const getSession = (): http2.ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    connectError = undefined;
    const s = http2.connect("http://localhost", { createConnection: () => net.connect(socketPath) });
    s.on("error", (err: NodeJS.ErrnoException) => {
      connectError = new ContainerError("unavailable", `cannot connect to ${socketPath}: ${err.code ?? err.message}`, { cause: err });
    });
    session = s;
    return s;
  };

  const open = <Req, Res>(
    method: MethodDefinition<Req, Res>,
    handlers: StreamHandlers<Res>,
    options: CallOptions,
  ): CallStream<Req> => {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": methodPath(service, method as MethodDefinition),
      "content-type": "application/grpc",
      te: "trailers",
    };
    let timer: NodeJS.Timeout | undefined;
    if (options.deadline !== undefined) {
      const ms = Math.max(1, options.deadline - Date.now());
      headers["grpc-timeout"] = `${ms}m`;
      timer = setTimeout(() => finish(new ContainerError("timeout", `the call to ${method.name} timed out`)), ms);
    }
    let settled = false;
    let responseHeaders: http2.IncomingHttpHeaders = {};
    const req = getSession().request(headers);

    function finish(err?: ContainerError): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // Closing our half too lets the session close once the CLI is done.
      req.close(err ? http2.constants.NGHTTP2_CANCEL : http2.constants.NGHTTP2_NO_ERROR);
      if (err) handlers.error(err);
      else handlers.end();
    }

    const onStatus = (trailers: http2.IncomingHttpHeaders): void => {
      const all = { ...responseHeaders, ...trailers };
      const raw = all["grpc-status"];
      if (raw === undefined) return finish(new ContainerError("internal", `${method.name}: the server sent no status`));
      const status = Number(Array.isArray(raw) ? raw[0] : raw);
      if (status === GRPC_OK) return finish();
      finish(statusError(status, decodeMessage(all["grpc-message"]) || `${method.name} failed with status ${status}`, all));
    };

    req.on("response", (h) => {
      responseHeaders = h;
    });
    // The status is read once every message has been: trailers can arrive
    // while a paused call still holds data. A trailers-only response carries
    // it in its headers.
    let trailers: http2.IncomingHttpHeaders = {};
    req.on("trailers", (t) => (trailers = t));
    req.on("end", () => {
      if (trailers["grpc-status"] !== undefined || responseHeaders["grpc-status"] !== undefined) onStatus(trailers);
    });
    const push = deframer((bytes) => {
      if (!settled) handlers.message(method.responseType.decode(bytes));
    });
    req.on("data", (chunk: Buffer) => {
      try {
        push(chunk);
      } catch (err) {
        finish(err as ContainerError);
      }
    });
    // The session's connection error, if that is why, arrives just after.
    req.on("close", () =>
      setImmediate(() => {
        if (settled) return;
        if (connectError) return finish(connectError);
        // The server went away (or reset the stream) without a status.
        const status = req.rstCode === http2.constants.NGHTTP2_CANCEL ? GRPC_CANCELLED : GRPC_UNAVAILABLE;
        finish(statusError(status, `${method.name}: the server closed the call without a status`, {}));
      }),
    );
    req.on("error", () => undefined); // reported through "close"

    return {
      write: (request) => req.write(frame(method.requestType.encode(request).finish())),
      onceDrain: (listener) => void req.once("drain", listener),
      end: () => void req.end(),
      pause: () => void req.pause(),
      resume: () => void req.resume(),
      cancel: () => {
        settled = true;
        clearTimeout(timer);
        req.close(http2.constants.NGHTTP2_CANCEL);
      },
    };
  };

  return {
    unary(name, request, options = {}) {
      const method = service.methods[name]!;
      return new Promise((resolve, reject) => {
        let response: ResponseOf<S["methods"][typeof name]> | undefined;
        const call = open(method, {
          message: (res) => (response = res),
          end: () =>
            response === undefined ? reject(new ContainerError("internal", `${method.name}: the server sent no response`)) : resolve(response),
          error: reject,
        }, options);
        call.write(request);
        call.end();
      });
    },
    stream(name, handlers, options = {}) {
      return open(service.methods[name]!, handlers, options);
    },
    close() {
      session?.close();
    },
  };
}
