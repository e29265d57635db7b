// The apiserver's containers: create (image -> rootfs clone -> helper boots
// the VM), start, attach, kill, delete, list, and finding live helpers again
// after a restart. The only writer of container records.
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { Metadata } from "@grpc/grpc-js";
import { ContainerError, asContainerError, sentByPeer } from "../../lib/errors/index.js";
import { call } from "../../lib/grpc/index.js";
import type { Logger } from "../../lib/log/index.js";
import type { ImageStore } from "../../helpers/image/types.js";
import { offersRosetta } from "../../helpers/hypervisor/index.js";
import type { GuestArch, GuestAssets } from "../../helpers/hypervisor/types.js";
import type { EmulationMode } from "../../lib/config/index.js";
import { BOOT_LOG_FILE, RUNTIME_CONFIG_FILE, RUNTIME_LOG_FILE, VMINITD_LOG_FILE, fallbackExitPath, type Emulator, type RuntimeConfig } from "../../helpers/runtime/config.js";
import { writeJsonAtomic } from "../../lib/fs/index.js";
import type { StatsResponse as HelperStats } from "../../helpers/runtime/api/gen/runtime.js";
import { chooseEmulation } from "./emulation.js";
import { createHelperLauncher, readExitRecord, reattachHelper, type HelperHandle } from "./helper.js";
import { bundleDir, loadRecords, saveRecord, type ContainerRecord } from "./records.js";
import { cloneRootfs, rootfsDisk } from "./rootfs.js";
import { buildProcess, imageArch, parsePlatform, validateIsolation, validateName, type CreateRequest } from "./spec.js";

export interface ManagerOptions {
  dataDir: string;
  runtimeDir: string;
  images: ImageStore;
  assets: GuestAssets;
  /** The guest kernel and init filesystem of another architecture (--platform with emulation "vm"). */
  foreignAssets?: (arch: GuestArch) => GuestAssets;
  /** How an image of another architecture runs (config.toml's [emulation] mode); default "user". */
  emulation?: EmulationMode;
  accelerator: () => Promise<string>;
  logger: Logger;
  /** Extra kernel arguments for every guest (vminitd's settings from config.toml). */
  guestKernelArgs?: string[];
  /** Keep a loaded runtime helper ready for the next container (default true). */
  spareHelper?: boolean;
}

export interface ContainerManager {
  create(request: CreateRequest): Promise<ContainerRecord>;
  /** Starts a created container; `size` is its terminal's (with a terminal). */
  start(ref: string, size?: { rows: number; cols: number }): Promise<void>;
  /** The helper serving a container's stdio; fails unless it runs or is about to. */
  helperFor(ref: string): Promise<{ record: ContainerRecord; helper: HelperHandle }>;
  /**
   * What a failed call to a container's helper means to the caller: when the
   * helper died under it, that, rather than the transport's words
   * ("Connection dropped"); otherwise the error itself.
   */
  helperFailure(record: ContainerRecord, helper: HelperHandle, err: unknown): Promise<ContainerError>;
  kill(ref: string, signal: number): Promise<void>;
  /** Signals the process, waits up to timeoutMs for it to end, then kills it; resolves once stopped. */
  stop(ref: string, signal: number, timeoutMs: number): Promise<void>;
  /** The record behind a reference (id, unique id prefix, or name). */
  get(ref: string): ContainerRecord;
  /** The container's directory (record, rootfs, logs). */
  bundleOf(id: string): string;
  /** Whether a runtime helper still runs for the container. */
  isRunning(id: string): boolean;
  /** Resource counters of running containers (all when `refs` is empty). */
  stats(refs: string[]): Promise<{ record: ContainerRecord; stats: HelperStats }[]>;
  /** Removes every stopped container; returns their ids. */
  prune(): Promise<string[]>;
  delete(ref: string, force: boolean): Promise<void>;
  list(all: boolean): ContainerRecord[];
  /** Resolves when a container's exit has been recorded (and, with autoRemove, it is gone). */
  settled(ref: string): Promise<ContainerRecord>;
  /** Stops every running container; used before the apiserver exits. */
  stopAll(): Promise<void>;
  /** Releases what the manager itself holds (the spare helper); containers keep running. */
  close(): void;
  recover(): Promise<void>;
}

/** The last lines of a bundle's runtime, guest agent and console logs. */
async function logTails(bundle: string, lines = 15): Promise<Record<string, string[]>> {
  const tails: Record<string, string[]> = {};
  for (const file of [RUNTIME_LOG_FILE, VMINITD_LOG_FILE, BOOT_LOG_FILE]) {
    const text = await readFile(join(bundle, file), "utf8").catch(() => "");
    tails[file] = text.trimEnd().split("\n").slice(-lines);
  }
  return tails;
}

/** A kernel asked for with -k: an absolute path to a readable file, checked before anything is made. */
async function checkKernel(path: string): Promise<string> {
  if (!isAbsolute(path)) throw new ContainerError("invalidArgument", `the kernel path must be absolute, not "${path}"`);
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile()) throw new ContainerError("notFound", `no kernel at ${path}`, { hint: "give the path of a guest kernel image (vmlinux on x86_64, Image on arm64)" });
  return path;
}

/** Beside an init filesystem: the emulators in it, {image arch: guest path} (scripts/build-initfs.mjs). */
const EMULATORS_FILE = "emulators.json";

/** How long a helper whose call broke gets to be seen gone before the transport's error stands. */
const HELPER_GONE_MS = 1000;

/** After SIGKILL, how long the process gets before the VM itself is stopped. */
const KILL_GRACE_MS = 5000;

export function createContainerManager(options: ManagerOptions): ContainerManager {
  const { dataDir, logger } = options;

  async function foreignAssets(arch: GuestArch): Promise<GuestAssets> {
    const assets = options.foreignAssets?.(arch);
    const present = assets && (await Promise.all([stat(assets.kernelPath), stat(assets.initfsPath)]).then(() => true, () => false));
    if (!assets || !present) {
      throw new ContainerError("unsupported", `no ${arch} guest on this host`, { hint: "`npm run setup` builds the guest kernels of both architectures" });
    }
    return assets;
  }

  /** The guest's user-mode emulator for images of `arch` (the init filesystem's emulators.json, written by its build). */
  async function userEmulator(arch: string): Promise<Emulator> {
    const listed = await readFile(join(dirname(options.assets.initfsPath), EMULATORS_FILE), "utf8").then(
      (text) => JSON.parse(text) as Record<string, string>,
      () => ({}) as Record<string, string>,
    );
    const interpreter = listed[arch];
    if (!interpreter) {
      throw new ContainerError("unsupported", `the ${options.assets.arch} guest has no emulator for ${arch} images`, {
        hint: 'set [emulation] mode = "vm" in config.toml to run them in an emulated guest of their own',
      });
    }
    return { kind: "qemu-user", imageArch: arch, interpreter };
  }
  const records = new Map<string, ContainerRecord>();
  const helpers = new Map<string, HelperHandle>();
  const settling = new Map<string, Promise<ContainerRecord>>();
  const creatingNames = new Set<string>();
  const launcher = createHelperLauncher({ runtimeDir: options.runtimeDir, spare: options.spareHelper ?? true });

  const runDirOf = (id: string): string => join(options.runtimeDir, "c", id.slice(0, 12));
  const placesOf = (id: string): { bundleDir: string; runDir: string } => ({ bundleDir: bundleDir(dataDir, id), runDir: runDirOf(id) });
  /**
   * Why a call to a container's helper failed: the helper's own error, or,
   * when the helper is gone, how the container ended (its exit status names
   * a VM that went away) or that the helper died.
   */
  async function helperFailure(record: ContainerRecord, helper: HelperHandle, err: unknown): Promise<ContainerError> {
    const e = asContainerError(err);
    if (sentByPeer(e) || e.code === "cancelled") return e;
    const gone = await Promise.race([helper.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), HELPER_GONE_MS))]);
    if (!gone) return e;
    const hint = `the container has stopped; \`container logs --boot ${record.name}\` shows its VM's side`;
    // A helper ends once its container has: the call raced the end.
    const exit = await readExitRecord(placesOf(record.id));
    if (exit) return new ContainerError("unavailable", exit.message ?? `container ${record.name} has exited`, { hint, cause: err });
    return new ContainerError("unavailable", `the runtime helper of container ${record.name} died`, { hint, cause: err });
  }

  /** What the helper's exit status says of the end, if anything; a helper leaves none only when it died. */
  async function howItEnded(id: string): Promise<string | undefined> {
    const exit = await readExitRecord(placesOf(id));
    return exit ? exit.message : "its runtime helper died";
  }

  /** A call to a container's helper, its failure explained by helperFailure. */
  async function callHelper<T>(record: ContainerRecord, helper: HelperHandle, request: (client: HelperHandle["client"]) => Promise<T>): Promise<T> {
    try {
      return await request(helper.client);
    } catch (err) {
      throw await helperFailure(record, helper, err);
    }
  }

  /** The helper's run dir, and the exit status it left beside it when the bundle's disk was full. */
  const removeRunDir = async (id: string): Promise<void> => {
    await rm(runDirOf(id), { recursive: true, force: true });
    await rm(fallbackExitPath({ runDir: runDirOf(id) }), { force: true });
  };

  function lookup(ref: string): ContainerRecord {
    if (!ref) throw new ContainerError("invalidArgument", "no container named");
    const exact = records.get(ref) ?? [...records.values()].find((r) => r.name === ref);
    if (exact) return exact;
    const matches = [...records.values()].filter((r) => r.id.startsWith(ref));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) throw new ContainerError("invalidArgument", `container id prefix "${ref}" is ambiguous`);
    throw new ContainerError("notFound", `no such container: ${ref}`, { hint: "list containers with `container ls -a`" });
  }

  async function update(record: ContainerRecord, patch: Partial<ContainerRecord>): Promise<void> {
    Object.assign(record, patch);
    await saveRecord(dataDir, record);
  }

  async function removeBundle(record: ContainerRecord): Promise<void> {
    records.delete(record.id);
    await rm(bundleDir(dataDir, record.id), { recursive: true, force: true });
    await removeRunDir(record.id);
  }

  /** Follows a helper to the end: records the exit, reaps the helper, removes when asked. */
  function follow(record: ContainerRecord, helper: HelperHandle): Promise<ContainerRecord> {
    const done = (async () => {
      await helper.exited;
      helper.close();
      helpers.delete(record.id);
      const exit = await readExitRecord(placesOf(record.id));
      if (record.autoRemove) {
        // The logs go with the bundle: when the runtime, not the process,
        // ended the container, keep their tails in the apiserver's log.
        if (exit?.reason !== "exited") logger.warn("container failed; its logs before removal", await logTails(bundleDir(dataDir, record.id)));
        record.state = "stopped";
        record.exitCode = exit?.exitCode ?? 137;
        await removeBundle(record);
      } else {
        // A full disk must not take the apiserver down: the record stays
        // right in memory, and the one on disk, still "running", is settled
        // by recover() after a restart (no helper, so stopped).
        await update(record, { state: "stopped", exitCode: exit?.exitCode ?? 137, helperPid: undefined }).catch((err: unknown) =>
          logger.error("could not save the container's record", { id: record.id, err: asContainerError(err).message }),
        );
      }
      await removeRunDir(record.id);
      launcher.prepareSpare();
      logger.info("container ended", { id: record.id, exitCode: record.exitCode, reason: exit?.reason ?? "helperDied", message: exit?.message });
      return record;
    })();
    settling.set(record.id, done);
    return done;
  }

  return {
    async create(request) {
      const name = request.name ? validateName(request.name) : "";
      if (name && ([...records.values()].some((r) => r.name === name) || creatingNames.has(name))) {
        throw new ContainerError("exists", `the container name "${name}" is already in use`, {
          hint: "remove that container or choose another name",
        });
      }
      const arch = parsePlatform(request.platform, options.assets.arch);
      const emulation = chooseEmulation({ host: options.assets.arch, image: arch, mode: options.emulation ?? "user", rosetta: offersRosetta() });
      const assets = emulation === "vm" ? await foreignAssets(arch) : options.assets;
      const emulator: Emulator | undefined =
        emulation === "rosetta" ? { kind: "rosetta" } : emulation === "qemu-user" ? await userEmulator(imageArch(arch)) : undefined;
      const kernelPath = request.kernel ? await checkKernel(request.kernel) : assets.kernelPath;
      const image = await options.images.resolve(request.image, { os: "linux", architecture: imageArch(arch) });
      const proc = buildProcess(request, image.config);
      validateIsolation(request.isolation);
      const id = randomBytes(32).toString("hex");
      const record: ContainerRecord = {
        id,
        name: name || id.slice(0, 12),
        image: image.reference,
        imageDigest: image.manifestDigest,
        args: proc.args,
        env: proc.env,
        cwd: proc.cwd,
        user: proc.user,
        interactive: request.interactive,
        tty: request.tty,
        autoRemove: request.autoRemove,
        cpus: request.cpus,
        memoryMiB: request.memoryMiB,
        labels: request.labels,
        readOnly: request.readOnly,
        isolation: request.isolation,
        createdAt: Date.now(),
        state: "created",
      };
      if (name) creatingNames.add(name);
      const bundle = bundleDir(dataDir, id);
      const runDir = runDirOf(id);
      try {
        await mkdir(bundle, { recursive: true, mode: 0o700 });
        const disk = rootfsDisk(bundle);
        await cloneRootfs(image.rootfsPath, disk);
        const runtime: RuntimeConfig = {
          id,
          bundleDir: bundle,
          runDir,
          // No hypervisor runs another architecture's guest natively.
          accelerator: assets === options.assets ? await options.accelerator() : "tcg",
          autoRemove: request.autoRemove,
          process: {
            ...proc,
            interactive: request.interactive,
            readOnly: request.readOnly,
            terminal: request.tty,
            isolation: request.isolation,
            ...(emulator ? { emulator } : {}),
            hostname: id.slice(0, 12),
          },
          vm: {
            id: id.slice(0, 12),
            arch: assets.arch,
            cpus: request.cpus,
            memoryMiB: request.memoryMiB,
            kernelPath,
            kernelArgs: options.guestKernelArgs ?? [],
            disks: [
              { path: assets.initfsPath, format: "raw", readOnly: true },
              { ...disk, readOnly: false },
            ],
            stateDir: join(runDir, "vm"),
            consoleLogPath: join(bundle, BOOT_LOG_FILE),
          },
        };
        await writeJsonAtomic(join(bundle, RUNTIME_CONFIG_FILE), runtime);
        await saveRecord(dataDir, record);
        const helper = await launcher.launch(runtime, (pid) => update(record, { helperPid: pid }));
        helpers.set(id, helper);
        records.set(id, record);
        void follow(record, helper);
        logger.info("container created", { id, image: record.image });
        return record;
      } catch (err) {
        records.delete(id);
        await rm(bundle, { recursive: true, force: true });
        await removeRunDir(id);
        throw err;
      } finally {
        if (name) creatingNames.delete(name);
      }
    },

    async start(ref, size) {
      const record = lookup(ref);
      const helper = helpers.get(record.id);
      if (record.state !== "created" || !helper) {
        // Why it stopped, which tells a `run` whose container ended between
        // its create and its start what happened. A helper leaves no exit
        // status only when it died.
        const why = record.state === "stopped" ? await howItEnded(record.id) : undefined;
        throw new ContainerError("invalidState", `container ${record.name} is ${record.state}${why ? ` (${why})` : ""}; only a created container can start`);
      }
      await update(record, { state: "running" });
      await callHelper(record, helper, (c) => call(c.start, c, { size }, new Metadata()));
    },

    async helperFor(ref) {
      const record = lookup(ref);
      const helper = helpers.get(record.id);
      if (!helper) throw new ContainerError("invalidState", `container ${record.name} is not running`);
      return { record, helper };
    },

    helperFailure,

    async kill(ref, signal) {
      const record = lookup(ref);
      const helper = helpers.get(record.id);
      if (!helper) throw new ContainerError("invalidState", `container ${record.name} is not running`);
      await callHelper(record, helper, (c) => call(c.kill, c, { signal }, new Metadata()));
    },

    async stop(ref, signal, timeoutMs) {
      const record = lookup(ref);
      const helper = helpers.get(record.id);
      if (!helper) return;
      const settled = settling.get(record.id);
      if (record.state === "created") {
        await call(helper.client.stop, helper.client, { force: true }, new Metadata()).catch(() => undefined);
        await settled;
        return;
      }
      await call(helper.client.kill, helper.client, { signal }, new Metadata()).catch(() => undefined);
      const inTime = await Promise.race([settled?.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs))]);
      if (inTime) return;
      logger.info("stop timed out; killing", { id: record.id, signal, timeoutMs });
      await call(helper.client.kill, helper.client, { signal: 9 }, new Metadata()).catch(() => undefined);
      const killed = await Promise.race([settled?.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), KILL_GRACE_MS))]);
      if (!killed) await call(helper.client.stop, helper.client, { force: true }, new Metadata()).catch(() => undefined);
      await settled;
    },

    get: lookup,

    isRunning: (id) => helpers.has(id),

    bundleOf: (id) => bundleDir(dataDir, id),

    async stats(refs) {
      const targets = refs.length > 0 ? refs.map(lookup) : [...records.values()].filter((r) => helpers.has(r.id) && r.state === "running");
      return Promise.all(
        targets.map(async (record) => {
          const helper = helpers.get(record.id);
          if (!helper || record.state !== "running") throw new ContainerError("invalidState", `container ${record.name} is not running`);
          return { record, stats: await callHelper(record, helper, (c) => call(c.stats, c, {}, new Metadata())) };
        }),
      );
    },

    async prune() {
      const stopped = [...records.values()].filter((r) => r.state === "stopped" && !helpers.has(r.id));
      for (const record of stopped) await removeBundle(record);
      return stopped.map((r) => r.id);
    },

    async delete(ref, force) {
      const record = lookup(ref);
      const helper = helpers.get(record.id);
      // Docker removes a created container that never ran, and one whose
      // exit is recorded while its VM winds down, without -f.
      if (helper && (record.state === "created" || record.state === "stopped")) force = true;
      if (helper) {
        if (!force) {
          throw new ContainerError("invalidState", `container ${record.name} is ${record.state}`, {
            hint: "stop it first, or use `container rm -f`",
          });
        }
        await call(helper.client.stop, helper.client, { force: true }, new Metadata()).catch(() => undefined);
        await settling.get(record.id);
      }
      await removeBundle(record);
    },

    list(all) {
      return [...records.values()]
        .filter((r) => all || r.state === "running")
        .sort((a, b) => b.createdAt - a.createdAt);
    },

    async settled(ref) {
      const record = lookup(ref);
      return settling.get(record.id) ?? record;
    },

    async stopAll() {
      await Promise.all(
        [...helpers.entries()].map(async ([id, helper]) => {
          await call(helper.client.stop, helper.client, { force: false }, new Metadata()).catch(() => undefined);
          await settling.get(id);
        }),
      );
    },

    close() {
      launcher.close();
    },

    async recover() {
      const { records: found, orphans } = await loadRecords(dataDir, logger);
      for (const id of orphans) await rm(bundleDir(dataDir, id), { recursive: true, force: true });
      for (const record of found) {
        records.set(record.id, record);
        if (record.state === "stopped") continue;
        const helper = record.helperPid
          ? await reattachHelper({ runDir: runDirOf(record.id) }, record.helperPid)
          : undefined;
        if (helper) {
          helpers.set(record.id, helper);
          void follow(record, helper);
          continue;
        }
        const exit = await readExitRecord(placesOf(record.id));
        if (record.autoRemove) await removeBundle(record);
        else await update(record, { state: "stopped", exitCode: exit?.exitCode ?? 137, helperPid: undefined });
      }
      // Sockets of helpers that died without cleaning up (a crash, a full disk).
      const live = new Set([...helpers.keys()].map((id) => id.slice(0, 12)));
      const runDirs = await readdir(join(options.runtimeDir, "c")).catch(() => [] as string[]);
      for (const name of runDirs.filter((n) => !live.has(n))) {
        await rm(join(options.runtimeDir, "c", name), { recursive: true, force: true });
        logger.info("stale runtime directory removed", { name });
      }
      logger.info("containers recovered", { count: records.size, running: helpers.size });
    },
  };
}
