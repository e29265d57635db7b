import { describe, expect, it } from "vitest";
import { ContainerError } from "../lib/errors/index.js";
import { explain } from "./client.js";

describe("explain", () => {
  it("a socket nobody listens on: the apiserver is not running", () => {
    const e = explain(new ContainerError("unavailable", "connect ECONNREFUSED /run/container/apiserver.sock"));
    expect(e.message).toBe("the container apiserver is not running");
    expect(e.hint).toMatch(/container system start/);
  });

  it("a call cut off without a status, reset or not: the apiserver went away during it", () => {
    for (const code of ["unavailable", "cancelled"] as const) {
      const e = explain(new ContainerError(code, "StartContainer: the server closed the call without a status"));
      expect(e.code).toBe("unavailable");
      expect(e.message).toBe("the apiserver went away during StartContainer");
      expect(e.hint).toMatch(/container ls -a/);
    }
  });

  it("leaves other errors as they are", () => {
    const original = new ContainerError("notFound", "no such container: x");
    expect(explain(original)).toBe(original);
  });
});
