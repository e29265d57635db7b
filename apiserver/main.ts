// The apiserver daemon: the one owner of container and image state, serving
// the ContainerService on a 0600 unix socket in the user's runtime dir.
// SIGTERM ends only the daemon (containers keep running in their helpers and
// are found again on the next start); the Shutdown RPC stops them first.
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { Server } from "@grpc/grpc-js";
import { loadConfig } from "../lib/config/index.js";
import { asContainerError, ContainerError } from "../lib/errors/index.js";
import { bindUnix, grpcService, shutdownServer } from "../lib/grpc/index.js";
import { createLogger } from "../lib/log/index.js";
import { APISERVER_PROGRAM, apiserverPidPath, apiserverSocketPath, dataDir, repoRoot, runtimeDir } from "../lib/paths/index.js";
import { createImageStore } from "../helpers/image/index.js";
import { guestAssets, selectAccelerator } from "../helpers/hypervisor/index.js";
import { takePidFile } from "../lib/process/index.js";
import { ContainerServiceDefinition } from "./api/gen/apiserver.js";
import { createContainerManager } from "./containers/manager.js";
import type { CreateRequest } from "./containers/spec.js";
import { containerService } from "./services/container-service.js";

async function main(): Promise<void> {
  // Read once at start: a bad config.toml stops the daemon with its one-line error.
  const config = await loadConfig();
  const logger = createLogger({ component: "apiserver" });
  const data = dataDir();
  const run = runtimeDir();
  const socket = apiserverSocketPath();
  await mkdir(data, { recursive: true, mode: 0o700 });
  await mkdir(run, { recursive: true, mode: 0o700 });
  // The pid file is the lock that keeps a second apiserver (two `system
  // start` at once) from owning the same state; it is taken before recover(),
  // which may take seconds.
  const holder = await takePidFile(apiserverPidPath(), APISERVER_PROGRAM);
  if (holder !== undefined) throw new ContainerError("exists", `an apiserver already serves ${socket} (pid ${holder})`);
  const version = (JSON.parse(await readFile(join(repoRoot(), "package.json"), "utf8")) as { version: string }).version;

  const assets = { ...guestAssets(), ...(config.kernel.path ? { kernelPath: config.kernel.path } : {}) };
  let accel: Promise<string> | undefined;
  const accelerator = (): Promise<string> => (accel ??= selectAccelerator({ assets, logger }));
  let selected = "probing";
  accelerator().then(
    (a) => {
      selected = a;
      logger.info("accelerator selected", { accelerator: a });
    },
    (err: unknown) => {
      selected = "unavailable";
      logger.error("no accelerator: containers cannot start", { err });
    },
  );

  const images = createImageStore({ root: data, logger });
  const manager = createContainerManager({
    dataDir: data,
    runtimeDir: run,
    images,
    assets,
    foreignAssets: (arch) => guestAssets(arch),
    emulation: config.emulation.mode,
    accelerator,
    logger,
    guestKernelArgs: config.vminit.logLevel === "debug" ? ["vminitd.debug=1"] : [],
  });
  // A container holds its image's content from resolve until its record
  // exists: image garbage collection waits for creations in flight.
  const containers = { ...manager, create: (request: CreateRequest) => images.use(() => manager.create(request)) };
  await containers.recover();

  const server = new Server();
  const exit = async (stopContainers: boolean): Promise<void> => {
    containers.close();
    if (stopContainers) await containers.stopAll();
    // Let in-flight replies (the Shutdown call's own) go out first.
    await shutdownServer(server, 2000);
    await rm(socket, { force: true });
    await rm(apiserverPidPath(), { force: true });
    logger.info("apiserver stopped", { stoppedContainers: stopContainers });
    process.exit(0);
  };
  server.addService(
    ...grpcService(
      ContainerServiceDefinition,
      containerService({
        version,
        containers,
        images,
        accelerator: () => selected,
        logger,
        defaults: config.container,
        shutdown: () => void exit(true),
      }),
    ),
  );
  await bindUnix(server, socket);
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => void exit(false));
  process.on("SIGHUP", () => undefined);
  logger.info("apiserver serving", { socket, version, pid: process.pid });
}

main().catch((err: unknown) => {
  const e = asContainerError(err);
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: "error", component: "apiserver", msg: e.message, code: e.code }) + "\n");
  process.exit(1);
});
