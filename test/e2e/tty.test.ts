// `-it` through a real pseudo-terminal: util-linux `script` gives the CLI a
// terminal as stdin and stdout, and the test types into it.
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, createTestEnv, waitFor, type TestEnv } from "../support/env.js";

let t: TestEnv;

beforeAll(async () => {
  t = await createTestEnv();
});

afterAll(async () => {
  await t?.close();
});

/**
 * Runs `container <args>` on a 40x120 terminal; `type` feeds it keystrokes.
 * With `resizeWhen`, the terminal becomes 30x100 once that file exists (the
 * kernel then sends the CLI SIGWINCH, as a terminal window would).
 */
function onTerminal(args: string[], resizeWhen?: string): { output: () => string; type: (keys: string) => void; exit: Promise<number> } {
  const cli = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(" ");
  const resize = resizeWhen ? `(while [ ! -e '${resizeWhen}' ]; do sleep 0.1; done; stty rows 30 cols 100 </dev/tty) & ` : "";
  const child = spawn("script", ["-qec", `stty rows 40 cols 120; ${resize}exec ${cli}`, "/dev/null"], { env: t.env, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? -1)));
  return { output: () => out, type: (keys) => void child.stdin.write(keys), exit };
}

describe("-it", () => {
  it("gives an interactive shell: echo round trip, terminal size, Ctrl-C, exit status", async () => {
    const term = onTerminal(["run", "-it", "--rm", "demo", "sh"]);
    await waitFor(() => term.output().includes("# "), 60_000, "the shell prompt");
    term.type("echo round-$((20+22)); tty; echo term=$TERM; stty size\r");
    await waitFor(() => term.output().includes("40 120"), 30_000, "the size");
    expect(term.output()).toContain("round-42");
    expect(term.output()).toMatch(/term=xterm\r*\n/);
    expect(term.output()).toMatch(/\/dev\/pts\/\d+/);
    // Ctrl-C interrupts the foreground command, not the shell.
    term.type("sleep 100\r");
    await new Promise((r) => setTimeout(r, 1000));
    term.type("\x03");
    // INTR flushes pending input: type on only once the shell has shown ^C.
    await waitFor(() => term.output().includes("^C"), 30_000, "^C to be echoed");
    await waitFor(() => term.output().split("^C")[1]?.includes("# ") ?? false, 30_000, "the prompt after ^C");
    term.type("echo after-interrupt\r");
    await waitFor(() => /after-interrupt\r*\n/.test(term.output().split("echo after-interrupt")[1] ?? ""), 30_000, "the shell after Ctrl-C");
    term.type("exit 3\r");
    expect(await term.exit).toBe(3);
  });

  it("follows the terminal's size changes (SIGWINCH)", async () => {
    const flag = join(t.dir, "resize-now");
    const term = onTerminal(["run", "-it", "--rm", "demo", "sh"], flag);
    await waitFor(() => term.output().includes("# "), 60_000, "the shell prompt");
    term.type("stty size\r");
    await waitFor(() => term.output().includes("40 120"), 30_000, "the first size");
    await writeFile(flag, "");
    await new Promise((r) => setTimeout(r, 1500));
    term.type("stty size\r");
    await waitFor(() => term.output().includes("30 100"), 30_000, "the new size");
    term.type("exit\r");
    expect(await term.exit).toBe(0);
  });

  it("exec -it runs a shell in a running container", async () => {
    expect((await t.cli(["run", "-d", "--name", "tt", "demo", "sleep", "600"])).code).toBe(0);
    const term = onTerminal(["exec", "-it", "tt", "sh"]);
    await waitFor(() => term.output().includes("# "), 60_000, "the shell prompt");
    term.type("ps | grep -c 'sleep 60[0]'; stty size\r");
    await waitFor(() => term.output().includes("40 120"), 30_000, "the size");
    expect(term.output()).toMatch(/\n1\r*\n/);
    term.type("exit 5\r");
    expect(await term.exit).toBe(5);
    await t.cli(["rm", "-f", "tt"]);
  });

  it("-it without a terminal on stdin is refused", async () => {
    const r = await t.cli(["run", "-it", "--rm", "demo", "sh"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe("Error: the input device is not a TTY\nHint: drop -t, or run from a terminal\n");
    expect((await t.cli(["ls", "-aq"])).stdout).toBe("");
  });
});
