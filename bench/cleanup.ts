// Undo steps registered as resources are made, run last-first whatever
// happened, so a failing row still removes its containers, VMs and files.
export class Cleanup {
  private readonly steps: { what: string; fn: () => Promise<unknown> | unknown }[] = [];

  /** Registers an undo step; returns a function that runs it now (and only once). */
  add(what: string, fn: () => Promise<unknown> | unknown): () => Promise<void> {
    const step = { what, fn };
    this.steps.push(step);
    return async () => {
      const i = this.steps.indexOf(step);
      if (i < 0) return;
      this.steps.splice(i, 1);
      await fn();
    };
  }

  /** Runs every step, last registered first; a failing step does not stop the others. Returns the failures. */
  async run(): Promise<Error[]> {
    const failures: Error[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        failures.push(new Error(`clean-up of ${step.what} failed: ${(err as Error).message}`, { cause: err }));
      }
    }
    return failures;
  }
}

const active = new Set<Cleanup>();

/** Runs the clean-up of every row still running: for a signal, which skips their `finally`s. */
export async function cleanUpActive(): Promise<Error[]> {
  const failures: Error[] = [];
  for (const c of [...active].reverse()) failures.push(...(await c.run()));
  return failures;
}

/** Runs `body` with a Cleanup that is always run after it; a clean-up failure is reported unless the body already threw. */
export async function withCleanup<T>(body: (cleanup: Cleanup) => Promise<T>): Promise<T> {
  const cleanup = new Cleanup();
  active.add(cleanup);
  let value: T;
  try {
    value = await body(cleanup);
  } catch (err) {
    active.delete(cleanup);
    const failures = await cleanup.run();
    for (const f of failures) process.stderr.write(`bench: ${f.message}\n`);
    throw err;
  }
  active.delete(cleanup);
  const failures = await cleanup.run();
  if (failures.length > 0) throw new AggregateError(failures, failures.map((f) => f.message).join("; "));
  return value;
}
