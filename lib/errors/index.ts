// One error type for the whole host side, with the fixed set of codes that the
// guest agent (vminitd/internal/errdefs) shares. At a gRPC boundary a code maps
// one-to-one onto a gRPC status code, and back; the code's own name and the
// hint travel in trailing metadata so nothing is lost in the round trip.
// No gRPC import here: processes load this before (or without) grpc-js; the
// server side of the mapping lives in lib/grpc.

export const ERROR_CODES = [
  "invalidArgument",
  "notFound",
  "exists",
  "invalidState",
  "timeout",
  "unsupported",
  "unavailable",
  "resourceExhausted",
  "cancelled",
  "internal",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** gRPC status codes, fixed by the gRPC specification. */
const TO_GRPC: Record<ErrorCode, number> = {
  invalidArgument: 3, // INVALID_ARGUMENT
  notFound: 5, // NOT_FOUND
  exists: 6, // ALREADY_EXISTS
  invalidState: 9, // FAILED_PRECONDITION
  timeout: 4, // DEADLINE_EXCEEDED
  unsupported: 12, // UNIMPLEMENTED
  unavailable: 14, // UNAVAILABLE
  resourceExhausted: 8, // RESOURCE_EXHAUSTED
  cancelled: 1, // CANCELLED
  internal: 13, // INTERNAL
};

const FROM_GRPC = new Map<number, ErrorCode>(
  Object.entries(TO_GRPC).map(([code, grpc]) => [grpc, code as ErrorCode]),
);

export const CODE_METADATA_KEY = "container-error-code";
export const HINT_METADATA_KEY = "container-error-hint";

export interface ContainerErrorOptions {
  hint?: string;
  cause?: unknown;
}

export class ContainerError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: ContainerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ContainerError";
    this.code = code;
    this.hint = options.hint;
  }

  /** The envelope that crosses process and language boundaries. */
  toJSON(): { code: ErrorCode; message: string; hint?: string } {
    return this.hint === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, hint: this.hint };
  }
}

export function isContainerError(err: unknown, code?: ErrorCode): err is ContainerError {
  return err instanceof ContainerError && (code === undefined || err.code === code);
}

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && (ERROR_CODES as readonly string[]).includes(value);
}

/** Any thrown value as a ContainerError; unknown failures become `internal`. */
export function asContainerError(err: unknown): ContainerError {
  if (err instanceof ContainerError) return err;
  if (isGrpcError(err)) return fromGrpcError(err);
  const message = err instanceof Error ? err.message : String(err);
  return new ContainerError("internal", message, { cause: err });
}

/** The shape of a gRPC client error (grpc-js ServiceError), duck-typed. */
export interface GrpcErrorLike extends Error {
  code: number;
  details?: string;
  metadata?: { get(key: string): unknown[] };
}

function isGrpcError(err: unknown): err is GrpcErrorLike {
  return err instanceof Error && typeof (err as Partial<GrpcErrorLike>).code === "number" && "metadata" in err;
}

/** Rebuilds the ContainerError a peer sent. */
export function fromGrpcError(err: GrpcErrorLike): ContainerError {
  const named = err.metadata?.get(CODE_METADATA_KEY)[0];
  const hint = err.metadata?.get(HINT_METADATA_KEY)[0];
  const code: ErrorCode = isErrorCode(named) ? named : (FROM_GRPC.get(err.code) ?? "internal");
  const message = err.details || err.message;
  return new ContainerError(code, message, {
    ...(typeof hint === "string" ? { hint } : {}),
    cause: err,
  });
}

/** Whether a gRPC error was sent by a peer of ours (it names its code), rather than made up by the transport. */
export function sentByPeer(err: ContainerError): boolean {
  const cause = err.cause as { metadata?: { get(key: string): unknown[] } } | undefined;
  return (cause?.metadata?.get(CODE_METADATA_KEY).length ?? 0) > 0;
}

export function grpcStatusOf(code: ErrorCode): number {
  return TO_GRPC[code];
}

/** Docker's exit statuses for a run that did not get its process going. */
export const RUN_FAILED = 125;
export const COMMAND_NOT_FOUND = 127;

/**
 * The exit status of a process that could not start: 127 when its command is
 * missing (the guest's `executable "x" not found in $PATH`, or `exec /x: ...`
 * for a missing interpreter), else 125. A missing user, working directory or
 * container is notFound too, but not the command's fault.
 */
export function startFailureStatus(err: ContainerError): number {
  return err.code === "notFound" && /^(executable "|exec \/)/.test(err.message) ? COMMAND_NOT_FOUND : RUN_FAILED;
}
