// The line each key of a TOML document is defined on. smol-toml gives a
// position only for syntax errors, and a config error must name its line, so
// this walks the text once: table headers, dotted keys, inline tables
// (nested, over several lines), and the strings, arrays and comments between
// them. It runs on documents smol-toml has already accepted, so it only needs
// to be right for valid TOML.

const BARE = /[A-Za-z0-9_-]+/y;

/** Map key for a key path: segments may themselves contain dots. */
const pathKey = (path: readonly string[]): string => JSON.stringify(path);

export type KeyLines = ReadonlyMap<string, number>;

/** Where each key path is first defined: a `[table]` header, a `key =` line, or the dotted key that implies it. */
export function keyLines(text: string): KeyLines {
  const lines = new Map<string, number>();
  let pos = 0;
  let line = 1;
  const peek = (): string => text[pos] ?? "";
  const at = (s: string): boolean => text.startsWith(s, pos);
  const advance = (n = 1): void => {
    for (let i = 0; i < n && pos < text.length; i++, pos++) if (text[pos] === "\n") line++;
  };
  const record = (prefix: readonly string[], key: readonly string[], where: number): void => {
    for (let i = 1; i <= key.length; i++) {
      const k = pathKey([...prefix, ...key.slice(0, i)]);
      if (!lines.has(k)) lines.set(k, where);
    }
  };

  // Blanks and comments; across lines too when `newlines`.
  const skip = (newlines: boolean): void => {
    for (;;) {
      const c = peek();
      if (c === " " || c === "\t" || c === "\r" || (newlines && c === "\n")) advance();
      else if (c === "#") while (pos < text.length && peek() !== "\n") advance();
      else return;
    }
  };

  const skipString = (): string => {
    const q = peek();
    const multi = at(q.repeat(3));
    advance(multi ? 3 : 1);
    const start = pos;
    while (pos < text.length) {
      if (q === '"' && peek() === "\\") {
        advance(2);
      } else if (multi ? at(q.repeat(3)) : peek() === q) {
        const raw = text.slice(start, pos);
        advance(multi ? 3 : 1);
        while (multi && peek() === q) advance(); // """a"""" ends in a quote
        return raw;
      } else {
        advance();
      }
    }
    return text.slice(start);
  };

  const key = (): string[] => {
    const parts: string[] = [];
    for (;;) {
      skip(false);
      const c = peek();
      if (c === '"' || c === "'") {
        const raw = skipString();
        parts.push(c === "'" ? raw : unescape(raw));
      } else {
        BARE.lastIndex = pos;
        const m = BARE.exec(text);
        if (!m) return parts;
        parts.push(m[0]);
        advance(m[0].length);
      }
      skip(false);
      if (peek() !== ".") return parts;
      advance();
    }
  };

  // `prefix` is the table the values land in; undefined inside arrays.
  const value = (prefix: readonly string[] | undefined): void => {
    const c = peek();
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      advance();
      for (;;) {
        skip(true);
        if (pos >= text.length) return;
        if (peek() === close) return advance();
        if (peek() === ",") {
          advance();
          continue;
        }
        const before = pos;
        if (c === "{") keyValue(prefix);
        else value(undefined);
        if (pos === before) advance();
      }
    } else if (c === '"' || c === "'") {
      skipString();
    } else {
      while (pos < text.length && !",]}\n#".includes(peek())) advance();
    }
  };

  const keyValue = (prefix: readonly string[] | undefined): void => {
    const where = line;
    const k = key();
    if (prefix) record(prefix, k, where);
    skip(false);
    if (peek() === "=") advance();
    skip(false);
    value(prefix && [...prefix, ...k]);
  };

  let table: string[] = [];
  for (;;) {
    skip(true);
    if (pos >= text.length) break;
    const before = pos;
    if (peek() === "[") {
      const where = line;
      const brackets = at("[[") ? 2 : 1;
      advance(brackets);
      table = key();
      record([], table, where);
      skip(false);
      advance(brackets);
    } else {
      keyValue(table);
    }
    if (pos === before) advance();
  }
  return lines;
}

/** The line of `path`, or of the nearest enclosing key or table that has one. */
export function lineOf(lines: KeyLines, path: readonly string[]): number | undefined {
  for (let n = path.length; n > 0; n--) {
    const found = lines.get(pathKey(path.slice(0, n)));
    if (found !== undefined) return found;
  }
  return undefined;
}

function unescape(raw: string): string {
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw; // TOML-only escapes (\e, \xHH, \UHHHHHHHH): close enough to find a line
  }
}
