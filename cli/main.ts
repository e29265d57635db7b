// The `container` command: parse, call the apiserver, render. Errors print as
// one line (and a hint) on stderr with a non-zero exit.
import { Command, CommanderError } from "commander";
import { asContainerError } from "../lib/errors/index.js";
import { registerContainers } from "./commands/containers.js";
import { registerCopy } from "./commands/copy.js";
import { registerExec } from "./commands/exec.js";
import { registerStats } from "./commands/stats.js";
import { registerImage } from "./commands/image.js";
import { registerRegistry } from "./commands/registry.js";
import { registerRun } from "./commands/run.js";
import { registerSystem } from "./commands/system.js";

const program = new Command("container")
  .description("run Linux containers, each in its own micro-VM")
  .enablePositionalOptions()
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride()
  .configureOutput({ outputError: (str, write) => write(str.split("\n")[0] + "\n") });

registerRun(program);
registerContainers(program);
registerExec(program);
registerCopy(program);
registerStats(program);
registerImage(program);
registerRegistry(program);
registerSystem(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander has printed its one-line message; help and version exit 0.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    const e = asContainerError(err);
    process.stderr.write(`Error: ${e.message}\n`);
    if (e.hint) process.stderr.write(`Hint: ${e.hint}\n`);
    process.exitCode = (err as { exitCode?: number }).exitCode ?? 1;
  }
}
