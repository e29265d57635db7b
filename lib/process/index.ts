// Processes by pid, for the parts that did not spawn them (or no longer hold
// the child object): the CLI and the apiserver after a restart, the tests.

/** Whether a pid names a live (or zombie) process; one of another user's counts. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
