// Progress as one line per item (a layer being pulled). On a terminal every
// item keeps its line and it is rewritten in place; elsewhere (a pipe, a log
// file) an item is printed once, when it is final, so logs stay short.
export interface ProgressLines {
  /** Sets the line of `id`; `final` when it will not change again. */
  set(id: string, text: string, final: boolean): void;
}

const CLEAR_LINE = "\x1b[2K";

export function progressLines(out: NodeJS.WriteStream): ProgressLines {
  const order: string[] = [];
  const printed = new Set<string>();
  return {
    set(id, text, final) {
      if (!out.isTTY) {
        if (final && !printed.has(id)) {
          printed.add(id);
          out.write(`${text}\n`);
        }
        return;
      }
      // A line wider than the terminal would wrap and break the cursor arithmetic.
      const line = text.slice(0, Math.max(1, (out.columns || 80) - 1));
      const row = order.indexOf(id);
      if (row === -1) {
        order.push(id);
        out.write(`${line}\n`);
        return;
      }
      const up = order.length - row;
      out.write(`\x1b[${up}A\r${CLEAR_LINE}${line}\x1b[${up}B\r`);
    },
  };
}
