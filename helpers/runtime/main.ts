// Entry point of a runtime helper. Started detached by the apiserver so it
// outlives an apiserver restart; owns exactly one container's VM and ends when
// that VM is gone.
//
//   main.js <bundle dir>            boot that container now
//   main.js --standby <runtime dir> load everything, then wait for a bundle dir
//                                   on stdin (EOF: exit). The apiserver keeps one
//                                   such spare so that no container waits for
//                                   Node and gRPC to load.
//
// Only what booting needs is imported up front; gRPC loads while the guest boots.
import { appendFileSync, openSync, writeSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { asContainerError } from "../../lib/errors/index.js";
import { createLogger } from "../../lib/log/index.js";
import { createHypervisor, preloadBackend } from "../hypervisor/index.js";
import { readRuntimeConfig, RUNTIME_LOG_FILE, runtimeSocketPath } from "./config.js";
import { bootContainer } from "./container.js";

function loadServing() {
  return Promise.all([
    import("@grpc/grpc-js"),
    import("../../lib/grpc/index.js"),
    import("./api/gen/runtime.js"),
    import("./service.js"),
    import("../agent/client.js"),
  ]);
}

/** The first line on stdin, or undefined at EOF. */
function readLine(): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = "";
    const done = (): void => {
      process.stdin.destroy();
      const nl = text.indexOf("\n");
      resolve(nl === -1 ? undefined : text.slice(0, nl));
    };
    process.stdin.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes("\n")) done();
    });
    process.stdin.on("end", done);
    process.stdin.on("error", done);
  });
}

async function standby(): Promise<string | undefined> {
  await Promise.all([loadServing(), preloadBackend()]);
  return readLine();
}

async function main(bundleDir: string): Promise<void> {
  const config = await readRuntimeConfig(bundleDir);
  const logFd = openSync(join(bundleDir, RUNTIME_LOG_FILE), "a", 0o600);
  const logger = createLogger({ component: "runtime", fields: { container: config.id }, write: (line) => writeSync(logFd, line) });
  await mkdir(config.vm.stateDir, { recursive: true, mode: 0o700 });
  const hypervisor = await createHypervisor({ accelerator: config.accelerator, logger });
  const container = await bootContainer(config, hypervisor, logger);

  const [{ Server }, { bindUnix, shutdownServer }, { RuntimeService }, { runtimeService }] = await loadServing();
  const server = new Server();
  server.addService(RuntimeService, runtimeService(container, process.pid));
  await bindUnix(server, runtimeSocketPath(config));

  // The apiserver may go away; this helper keeps the container alive regardless.
  process.on("SIGHUP", () => undefined);
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => void container.stop(true));
  }

  await container.done();
  // Attached clients have been sent the exit status; let those calls finish:
  // they end once the apiserver has read the output still queued (a slow
  // reader may take a while with a lot of it), then close whatever is left.
  await shutdownServer(server, CALLS_GRACE_MS);
  await rm(config.runDir, { recursive: true, force: true });
  logger.info("helper done");
}

/** How long calls in flight (an attach still draining output) may run on after the container has ended. */
const CALLS_GRACE_MS = 60_000;

const arg = process.argv[2];
if (!arg) {
  process.stderr.write("usage: runtime <bundle dir> | --standby <runtime dir>\n");
  process.exit(2);
}
const bundle = arg === "--standby" ? await standby() : arg;
if (bundle === undefined) process.exit(0);
main(bundle).then(
  () => process.exit(0),
  (err: unknown) => {
    const e = asContainerError(err);
    const line = JSON.stringify({ time: new Date().toISOString(), level: "error", component: "runtime", msg: e.message, code: e.code }) + "\n";
    // Into the runtime log, where the apiserver looks for why (a spare's
    // stderr is the apiserver's own log).
    try {
      appendFileSync(join(bundle, RUNTIME_LOG_FILE), line, { mode: 0o600 });
    } catch {
      process.stderr.write(line);
    }
    process.exit(1);
  },
);
