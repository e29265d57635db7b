import { Metadata, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import {
  asContainerError,
  CODE_METADATA_KEY,
  ContainerError,
  ERROR_CODES,
  type ErrorCode,
  fromGrpcError,
  type GrpcErrorLike,
  grpcStatusOf,
  HINT_METADATA_KEY,
  isContainerError,
} from "./index.js";

function grpcError(code: number, details: string, md: Record<string, string> = {}): GrpcErrorLike {
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(md)) metadata.set(k, v);
  return Object.assign(new Error(`${code} ${status[code] ?? "?"}: ${details}`), { code, details, metadata });
}

describe("ContainerError", () => {
  it("carries code, message, hint and cause", () => {
    const cause = new Error("root");
    const e = new ContainerError("notFound", "no such container", { hint: "check the name", cause });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("ContainerError");
    expect(e.code).toBe("notFound");
    expect(e.message).toBe("no such container");
    expect(e.hint).toBe("check the name");
    expect(e.cause).toBe(cause);
  });

  it("has no hint or cause unless given", () => {
    const e = new ContainerError("internal", "boom");
    expect(e.hint).toBeUndefined();
    expect("cause" in e).toBe(false);
  });

  it("toJSON gives the envelope, omitting an absent hint", () => {
    expect(new ContainerError("exists", "taken", { hint: "pick another" }).toJSON()).toEqual({
      code: "exists",
      message: "taken",
      hint: "pick another",
    });
    const bare = new ContainerError("timeout", "slow").toJSON();
    expect(bare).toEqual({ code: "timeout", message: "slow" });
    expect("hint" in bare).toBe(false);
    expect(JSON.parse(JSON.stringify(new ContainerError("timeout", "slow")))).toEqual({ code: "timeout", message: "slow" });
  });

  it("isContainerError checks the type and optionally the code", () => {
    const e = new ContainerError("notFound", "x");
    expect(isContainerError(e)).toBe(true);
    expect(isContainerError(e, "notFound")).toBe(true);
    expect(isContainerError(e, "exists")).toBe(false);
    expect(isContainerError(new Error("x"))).toBe(false);
    expect(isContainerError("x")).toBe(false);
  });
});

describe("asContainerError", () => {
  it("returns a ContainerError unchanged", () => {
    const e = new ContainerError("invalidState", "nope");
    expect(asContainerError(e)).toBe(e);
  });

  it("turns a plain Error into internal, keeping message and cause", () => {
    const err = new TypeError("bad thing");
    const e = asContainerError(err);
    expect(e).toBeInstanceOf(ContainerError);
    expect(e.code).toBe("internal");
    expect(e.message).toBe("bad thing");
    expect(e.cause).toBe(err);
  });

  it("turns a string into internal", () => {
    const e = asContainerError("just text");
    expect(e.code).toBe("internal");
    expect(e.message).toBe("just text");
    expect(e.cause).toBe("just text");
  });

  it("turns other thrown values into internal", () => {
    expect(asContainerError(undefined).message).toBe("undefined");
    expect(asContainerError(42).code).toBe("internal");
  });

  it("rebuilds a gRPC client error", () => {
    const e = asContainerError(grpcError(status.NOT_FOUND, "gone", { [CODE_METADATA_KEY]: "notFound" }));
    expect(e.code).toBe("notFound");
    expect(e.message).toBe("gone");
  });

  it("does not treat an Error with a numeric code but no metadata as gRPC", () => {
    const err = Object.assign(new Error("errno-ish"), { code: 5 });
    expect(asContainerError(err).code).toBe("internal");
  });
});

describe("fromGrpcError", () => {
  it("prefers the container-error-code metadata over the numeric status", () => {
    // UNIMPLEMENTED would map to unsupported; the named code wins.
    const err = grpcError(status.UNIMPLEMENTED, "busy", { [CODE_METADATA_KEY]: "invalidState", [HINT_METADATA_KEY]: "wait" });
    const e = fromGrpcError(err);
    expect(e.code).toBe("invalidState");
    expect(e.message).toBe("busy");
    expect(e.hint).toBe("wait");
    expect(e.cause).toBe(err);
  });

  it("falls back to the numeric status without metadata code", () => {
    const e = fromGrpcError(grpcError(status.ALREADY_EXISTS, "dup"));
    expect(e.code).toBe("exists");
    expect(e.hint).toBeUndefined();
  });

  it("ignores an unknown metadata code and uses the status", () => {
    expect(fromGrpcError(grpcError(status.NOT_FOUND, "x", { [CODE_METADATA_KEY]: "bogus" })).code).toBe("notFound");
  });

  it("maps statuses with no ErrorCode (UNKNOWN, PERMISSION_DENIED, …) to internal", () => {
    expect(fromGrpcError(grpcError(status.UNKNOWN, "x")).code).toBe("internal");
    expect(fromGrpcError(grpcError(status.PERMISSION_DENIED, "x")).code).toBe("internal");
  });

  it("uses the message when details is empty, and tolerates missing metadata", () => {
    const err: GrpcErrorLike = Object.assign(new Error("14 UNAVAILABLE: no connection"), { code: status.UNAVAILABLE, details: "" });
    const e = fromGrpcError(err);
    expect(e.code).toBe("unavailable");
    expect(e.message).toBe("14 UNAVAILABLE: no connection");
  });
});

describe("gRPC status mapping", () => {
  const expected: Record<ErrorCode, status> = {
    invalidArgument: status.INVALID_ARGUMENT,
    notFound: status.NOT_FOUND,
    exists: status.ALREADY_EXISTS,
    invalidState: status.FAILED_PRECONDITION,
    timeout: status.DEADLINE_EXCEEDED,
    unsupported: status.UNIMPLEMENTED,
    unavailable: status.UNAVAILABLE,
    resourceExhausted: status.RESOURCE_EXHAUSTED,
    cancelled: status.CANCELLED,
    internal: status.INTERNAL,
  };

  it("matches grpc-js's status enum", () => {
    for (const code of ERROR_CODES) expect(grpcStatusOf(code), code).toBe(expected[code]);
  });

  it("gives every ErrorCode a distinct status", () => {
    const numbers = ERROR_CODES.map(grpcStatusOf);
    expect(new Set(numbers).size).toBe(ERROR_CODES.length);
    expect(numbers.every((n) => Number.isInteger(n) && n > 0 && n <= 16)).toBe(true);
  });

  it.each(ERROR_CODES.map((c) => [c]))("%s round-trips through its status alone", (code) => {
    expect(fromGrpcError(grpcError(grpcStatusOf(code), "m")).code).toBe(code);
  });
});
