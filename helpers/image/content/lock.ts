// Keeps garbage collection apart from everything that reads or adds content.
// Any number of users hold the store at once; a collection runs alone: it
// waits until no user holds the store, and users arriving while it runs wait
// for it to end. A user never waits for a collection that is only waiting, so
// one use may nest inside another (a container's creation around its image's
// resolve) without deadlock; a collection can wait while uses keep coming.
// Within one process only.
export class GcLock {
  private users = 0;
  private collecting: Promise<void> | undefined;
  private idle: (() => void)[] = [];

  /** Holds the store until the returned release is called (once). */
  async hold(): Promise<() => void> {
    while (this.collecting) await this.collecting;
    this.users++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.users === 0) for (const wake of this.idle.splice(0)) wake();
    };
  }

  async use<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.hold();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Runs `fn` alone, once no user holds the store. */
  async collect<T>(fn: () => Promise<T>): Promise<T> {
    for (;;) {
      while (this.collecting) await this.collecting;
      if (this.users === 0) break;
      await new Promise<void>((resolve) => this.idle.push(resolve));
    }
    return this.run(fn);
  }

  /** Runs `fn` alone if nothing holds the store right now; undefined without running it otherwise. */
  async tryCollect<T>(fn: () => Promise<T>): Promise<T | undefined> {
    if (this.collecting || this.users > 0) return undefined;
    return this.run(fn);
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    let done!: () => void;
    this.collecting = new Promise((resolve) => (done = resolve));
    try {
      return await fn();
    } finally {
      this.collecting = undefined;
      done();
    }
  }
}
