import { ContainerError, type ErrorCode } from "../../lib/errors/index.js";

/**
 * A failure as a ContainerError. Node's own message already names the call
 * and the path ("ENOENT: no such file or directory, lstat '/x'"), so it is
 * kept and the errno picks the code. Other errors come from the streams and
 * the tar layer: they get `plain` and `prefix` (what such a failure means
 * there).
 */
export function toContainerError(err: unknown, plain: ErrorCode, prefix = ""): ContainerError {
  if (err instanceof ContainerError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const system = err as NodeJS.ErrnoException | null;
  if (typeof system?.errno !== "number") return new ContainerError(plain, prefix + message, { cause: err });
  switch (system.code) {
    case "ENOENT":
    case "ENOTDIR":
      return new ContainerError("notFound", message, { cause: err });
    case "EEXIST":
      return new ContainerError("exists", message, { cause: err });
    case "ENOSPC":
    case "EDQUOT":
      return new ContainerError("resourceExhausted", message, { cause: err });
    default:
      return new ContainerError("internal", message, { cause: err });
  }
}
