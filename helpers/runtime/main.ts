// Entry point of a runtime helper: `node helpers/runtime/main.js <bundle dir>`.
// Started detached by the apiserver so it outlives an apiserver restart; owns
// exactly one container's VM and ends when that VM is gone.
import { mkdir, rm } from "node:fs/promises";
import { Server } from "@grpc/grpc-js";
import { asContainerError } from "../../lib/errors/index.js";
import { bindUnix } from "../../lib/grpc/index.js";
import { createLogger } from "../../lib/log/index.js";
import { createHypervisor } from "../hypervisor/index.js";
import { RuntimeService } from "./api/gen/runtime.js";
import { readRuntimeConfig, runtimeSocketPath } from "./config.js";
import { bootContainer } from "./container.js";
import { runtimeService } from "./service.js";

async function main(bundleDir: string): Promise<void> {
  const config = await readRuntimeConfig(bundleDir);
  const logger = createLogger({ component: "runtime", fields: { container: config.id } });
  await mkdir(config.vm.stateDir, { recursive: true, mode: 0o700 });
  const hypervisor = await createHypervisor({ accelerator: config.accelerator, logger });
  const container = await bootContainer(config, hypervisor, logger);

  const server = new Server();
  server.addService(RuntimeService, runtimeService(container, process.pid));
  await bindUnix(server, runtimeSocketPath(config));

  // The apiserver may go away; this helper keeps the container alive regardless.
  process.on("SIGHUP", () => undefined);
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => void container.stop(true));
  }

  await container.done();
  // Give attached clients a moment to read the exit status before the socket goes.
  await new Promise((r) => setTimeout(r, 50));
  server.forceShutdown();
  await rm(config.runDir, { recursive: true, force: true });
  logger.info("helper done");
}

const bundle = process.argv[2];
if (!bundle) {
  process.stderr.write("usage: runtime <bundle dir>\n");
  process.exit(2);
}
main(bundle).then(
  () => process.exit(0),
  (err: unknown) => {
    const e = asContainerError(err);
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: "error", component: "runtime", msg: e.message, code: e.code }) + "\n");
    process.exit(1);
  },
);
