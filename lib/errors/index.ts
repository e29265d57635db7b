// One error type for the whole host side, with the fixed set of codes that the
// guest agent (vminitd/internal/errdefs) shares. At a gRPC boundary a code maps
// one-to-one onto a gRPC status code, and back; the code's own name and the
// hint travel in trailing metadata so nothing is lost in the round trip.
import { Metadata, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";

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

const TO_GRPC: Record<ErrorCode, GrpcStatus> = {
  invalidArgument: GrpcStatus.INVALID_ARGUMENT,
  notFound: GrpcStatus.NOT_FOUND,
  exists: GrpcStatus.ALREADY_EXISTS,
  invalidState: GrpcStatus.FAILED_PRECONDITION,
  timeout: GrpcStatus.DEADLINE_EXCEEDED,
  unsupported: GrpcStatus.UNIMPLEMENTED,
  unavailable: GrpcStatus.UNAVAILABLE,
  resourceExhausted: GrpcStatus.RESOURCE_EXHAUSTED,
  cancelled: GrpcStatus.CANCELLED,
  internal: GrpcStatus.INTERNAL,
};

const FROM_GRPC = new Map<GrpcStatus, ErrorCode>(
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

function isGrpcError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number" && "metadata" in err;
}

/** The gRPC error a server sends for `err`. */
export function toGrpcError(err: unknown): Partial<ServiceError> {
  const e = asContainerError(err);
  const metadata = new Metadata();
  metadata.set(CODE_METADATA_KEY, e.code);
  if (e.hint !== undefined) metadata.set(HINT_METADATA_KEY, e.hint);
  return { code: TO_GRPC[e.code], details: e.message, metadata };
}

/** Rebuilds the ContainerError a peer sent. */
export function fromGrpcError(err: ServiceError): ContainerError {
  const named = err.metadata?.get(CODE_METADATA_KEY)[0];
  const hint = err.metadata?.get(HINT_METADATA_KEY)[0];
  const code: ErrorCode = isErrorCode(named) ? named : (FROM_GRPC.get(err.code) ?? "internal");
  const message = err.details || err.message;
  return new ContainerError(code, message, {
    ...(typeof hint === "string" ? { hint } : {}),
    cause: err,
  });
}

export function grpcStatusOf(code: ErrorCode): GrpcStatus {
  return TO_GRPC[code];
}
