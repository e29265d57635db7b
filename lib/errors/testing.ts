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

/** Awaits `promise`, expecting it to reject with a ContainerError with `code` (and a message matching `message`). */
export async function expectContainerRejection(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<ContainerError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ContainerError);
    expect((err as ContainerError).code).toBe(code);
    if (message) expect((err as ContainerError).message).toMatch(message);
    return err as ContainerError;
  }
  throw new Error(`expected a ${code} error`);
}
