// Structured logs: one JSON object per line, for the daemon and the helpers.
// Business logic logs through this and never prints.
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  component: string;
  level?: LogLevel;
  write?: (line: string) => void;
  fields?: Record<string, unknown>;
}

function serialiseError(value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const code = (value as { code?: unknown }).code;
  return { message: value.message, ...(code === undefined ? {} : { code }) };
}

export function createLogger(options: LoggerOptions): Logger {
  const envLevel = process.env.CONTAINER_LOG_LEVEL as LogLevel | undefined;
  const min = RANK[options.level ?? (envLevel && envLevel in RANK ? envLevel : "info")];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const base = { component: options.component, ...options.fields };
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (RANK[level] < min) return;
    const record: Record<string, unknown> = { time: new Date().toISOString(), level, msg, ...base };
    for (const [k, v] of Object.entries(fields ?? {})) record[k] = serialiseError(v);
    try {
      write(JSON.stringify(record) + "\n");
    } catch {
      // A log line that cannot be written (a full disk) is lost; the process
      // that logs it must go on.
    }
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ ...options, fields: { ...options.fields, ...fields } }),
  };
}
