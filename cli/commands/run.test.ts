import { describe, expect, it } from "vitest";
import { ContainerError } from "../../lib/errors/index.js";
import { startFailureStatus } from "./run.js";

describe("startFailureStatus", () => {
  it.each([
    [new ContainerError("notFound", 'executable "nosuch" not found in $PATH'), 127],
    [new ContainerError("notFound", "exec /script: no such file or directory"), 127],
    [new ContainerError("notFound", 'user "bob" not found in /etc/passwd'), 125],
    [new ContainerError("notFound", "working directory /nope: no such file or directory"), 125],
    [new ContainerError("notFound", "no such container: c1"), 125],
    [new ContainerError("invalidArgument", "cap-add: unknown capability FOO"), 125],
  ])("%s -> %d", (err, status) => {
    expect(startFailureStatus(err)).toBe(status);
  });
});
