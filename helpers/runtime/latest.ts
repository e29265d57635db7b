// Ordering for calls whose latest value is all that matters.
/**
 * Calls `fn` one call at a time with the latest value. A terminal resized
 * twice in a burst must end at the second size; two concurrent RPCs could be
 * served in either order. Sizes superseded while a call runs are skipped.
 */
export function latestInOrder<T>(fn: (value: T) => Promise<void>): (value: T) => Promise<void> {
  let next: { value: T } | undefined;
  let running: Promise<void> | undefined;
  return (value) => {
    next = { value };
    running ??= (async () => {
      try {
        for (let v: { value: T } | undefined = next; v; v = next) {
          next = undefined;
          await fn(v.value);
        }
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
}
