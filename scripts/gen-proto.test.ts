// The checked-in generated code (Go for the agent, TS for every component)
// must match what scripts/gen-proto.mjs produces from the .proto files.
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, symlink, writeFile, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ZX = path.join(ROOT, "node_modules", "zx", "build", "cli.js");

async function check(root: string): Promise<{ code: number; stderr: string }> {
  try {
    const r = await run(process.execPath, [ZX, path.join(root, "scripts", "gen-proto.mjs"), "--check"], {
      cwd: root,
    });
    return { code: 0, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, stderr: e.stderr ?? String(err) };
  }
}

describe("gen-proto", () => {
  // The first run may install the pinned Go plugins into .tools/bin.
  it("checked-in generated code is up to date", { timeout: 240_000 }, async () => {
    const r = await check(ROOT);
    expect(r.code, `generated code is stale; run \`npm run gen:proto\`\n${r.stderr}`).toBe(0);
  });

  it("--check names stale files", { timeout: 240_000 }, async () => {
    // A scratch copy of the repository parts the generator reads.
    const tmp = await mkdtemp(path.join(tmpdir(), "gen-proto-test-"));
    try {
      await mkdir(path.join(tmp, "scripts"));
      await cp(path.join(ROOT, "scripts", "gen-proto.mjs"), path.join(tmp, "scripts", "gen-proto.mjs"));
      await symlink(path.join(ROOT, "node_modules"), path.join(tmp, "node_modules"));
      if (existsSync(path.join(ROOT, ".tools"))) await symlink(path.join(ROOT, ".tools"), path.join(tmp, ".tools"));
      await cp(path.join(ROOT, "vminitd", "api"), path.join(tmp, "vminitd", "api"), { recursive: true });
      await cp(path.join(ROOT, "helpers", "agent", "gen"), path.join(tmp, "helpers", "agent", "gen"), { recursive: true });
      const ts = path.join(tmp, "helpers", "agent", "gen", "agent.ts");
      await writeFile(ts, (await readFile(ts, "utf8")) + "\n// edited by hand\n");
      await writeFile(path.join(tmp, "helpers", "agent", "gen", "leftover.ts"), "export {};\n");

      const r = await check(tmp);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("helpers/agent/gen/agent.ts (out of date)");
      expect(r.stderr).toContain("helpers/agent/gen/leftover.ts (no longer generated)");
      expect(r.stderr).not.toContain("agent.pb.go");
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
