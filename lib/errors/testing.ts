// Test helper: run `fn`, expect it to throw a ContainerError with `code`.
import { expect } from "vitest";
import { ContainerError, type ErrorCode } from "./index.js";

export function expectContainerError(fn: () => unknown, code: ErrorCode): ContainerError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ContainerError);
    expect((err as ContainerError).code).toBe(code);
    return err as ContainerError;
  }
  throw new Error(`expected a ${code} error`);
}
