// `container system property list`: the merged configuration (built-in
// defaults + config.toml), read from the user's file here; no apiserver needed.
// Loaded only when used (cli/commands/system.ts), which keeps smol-toml off
// every other command's start-up.
import { stringify } from "smol-toml";
import { configDocument, loadConfig, type Config } from "../../lib/config/index.js";
import { ContainerError } from "../../lib/errors/index.js";
import { guestAssets } from "../../helpers/hypervisor/index.js";
import { renderJson, renderTable } from "../render/table.js";

export const PROPERTY_FORMATS = ["table", "json", "toml"] as const;
export type PropertyFormat = (typeof PROPERTY_FORMATS)[number];

export function parsePropertyFormat(value: string): PropertyFormat {
  if (!(PROPERTY_FORMATS as readonly string[]).includes(value)) {
    throw new ContainerError("invalidArgument", `unknown format "${value}"`, { hint: `use ${PROPERTY_FORMATS.join(", ")}` });
  }
  return value as PropertyFormat;
}

/** table: KEY VALUE with dotted keys; json and toml: the file's own shape. */
export function renderProperties(config: Config, format: PropertyFormat): string {
  const doc = configDocument(config);
  if (format === "json") return renderJson(doc);
  if (format === "toml") return stringify(doc).trimEnd() + "\n";
  const rows = Object.entries(doc).flatMap(([table, keys]) => Object.entries(keys).map(([k, v]) => [`${table}.${k}`, String(v)]));
  return renderTable(["KEY", "VALUE"], rows);
}

/** What `system property list` prints; reads config.toml (the defaults when there is none). */
export async function listProperties(format: string): Promise<string> {
  const f = parsePropertyFormat(format);
  const config = await loadConfig();
  // Show the kernel that will boot, also when it is the built one.
  return renderProperties(config.kernel.path ? config : { ...config, kernel: { path: guestAssets().kernelPath } }, f);
}
