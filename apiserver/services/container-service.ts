// The ContainerService handlers: validate, delegate to the container manager
// or the image store, map errors at the wire. No logic of their own.
import {
  Metadata,
  type ClientDuplexStream,
  type ClientWritableStream,
  type ServerDuplexStream,
  type ServerReadableStream,
  type ServerWritableStream,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { ContainerError } from "../../lib/errors/index.js";
import { toGrpcError, unary, type ServerOf } from "../../lib/grpc/index.js";
import type { Logger } from "../../lib/log/index.js";
import type { ImageStore } from "../../helpers/image/types.js";
import type {
  AttachRequest as HelperAttachRequest,
  AttachResponse as HelperAttachResponse,
  CopyChunk as HelperCopyChunk,
  CopyInRequest as HelperCopyInRequest,
  ExecRequest as HelperExecRequest,
  ExecResponse as HelperExecResponse,
} from "../../helpers/runtime/api/gen/runtime.js";
import type {
  AttachRequest,
  AttachResponse,
  ContainerConfig,
  ContainerDetail,
  ContainerServiceDefinition,
  CopyChunk,
  CopyInRequest,
  CopyInResponse,
  CopyOutRequest,
  ExecRequest,
  ExecResponse,
  LogsRequest,
  LogsResponse,
} from "../api/gen/apiserver.js";
import { imageService } from "./image-service.js";
import { readLogs } from "../containers/logs.js";
import type { ContainerManager } from "../containers/manager.js";
import type { ContainerRecord } from "../containers/records.js";
import type { ContainerDefaults } from "../../lib/config/index.js";
import { mergeEnv, resolveResources, validateEnv, type CreateRequest } from "../containers/spec.js";

export interface ServiceContext {
  version: string;
  containers: ContainerManager;
  images: ImageStore;
  /** The accelerator in use, or "probing" while that is being decided. */
  accelerator: () => string;
  logger: Logger;
  /** The VM size of containers created without one (config.toml's `[container]`). */
  defaults: ContainerDefaults;
  /** Asks the daemon to stop containers and exit. */
  shutdown: () => void;
}


function createRequest(config: ContainerConfig | undefined, defaults: ContainerDefaults): CreateRequest {
  if (!config?.image) throw new ContainerError("invalidArgument", "no image named", { hint: "container run IMAGE [COMMAND...]" });
  const { cpus, memoryMiB } = resolveResources({ cpus: config.cpus, memoryMiB: Number(config.memoryMib) }, defaults);
  return {
    name: config.name,
    image: config.image,
    command: config.command,
    env: config.env,
    workdir: config.workdir,
    interactive: config.interactive,
    autoRemove: config.autoRemove,
    cpus,
    memoryMiB,
    labels: config.labels,
    user: config.user,
    ...(config.entrypoint === undefined ? {} : { entrypoint: config.entrypoint }),
    readOnly: config.readOnly,
    tty: config.tty,
    kernel: config.kernel,
    isolation: {
      init: config.init,
      capAdd: config.capAdd,
      capDrop: config.capDrop,
      ulimits: config.ulimits.map((u) => ({ type: u.type, soft: Number(u.soft), hard: Number(u.hard) })),
      tmpfs: config.tmpfs.map((t) => ({ path: t.path, options: t.options })),
      shmSizeBytes: Number(config.shmSizeBytes),
      noNewPrivileges: config.noNewPrivileges,
    },
    platform: config.platform,
  };
}

/** Apple's container gives a stopping process 5 seconds (Docker 10). */
const DEFAULT_STOP_TIMEOUT_S = 5;

function detail(ctx: ServiceContext, r: ContainerRecord): ContainerDetail {
  return {
    summary: summary(r),
    imageDigest: r.imageDigest,
    env: r.env,
    cwd: r.cwd,
    interactive: r.interactive,
    autoRemove: r.autoRemove,
    cpus: r.cpus,
    memoryMib: BigInt(r.memoryMiB),
    labels: r.labels ?? {},
    readOnly: r.readOnly ?? false,
    helperPid: r.helperPid ?? 0,
    bundleDir: ctx.containers.bundleOf(r.id),
    user: r.user ?? "",
  };
}

/** Streams a container's logs (apiserver/containers/logs.ts); the call's cancellation stops a follow. */
async function streamLogs(ctx: ServiceContext, call: ServerWritableStream<LogsRequest, LogsResponse>): Promise<void> {
  const abort = new AbortController();
  call.on("cancelled", () => abort.abort());
  try {
    const record = ctx.containers.get(call.request.id);
    const chunks = readLogs({
      bundleDir: ctx.containers.bundleOf(record.id),
      boot: call.request.boot,
      tail: call.request.tail,
      follow: call.request.follow,
      running: () => ctx.containers.isRunning(record.id),
      signal: abort.signal,
    });
    for await (const chunk of chunks) {
      if (!call.write(chunk.stream === "stdout" ? { stdout: chunk.data } : { stderr: chunk.data })) {
        await new Promise((resolve) => call.once("drain", resolve));
      }
    }
    call.end();
  } catch (err) {
    call.emit("error", toGrpcError(err));
  }
}

function summary(r: ContainerRecord) {
  return {
    id: r.id,
    name: r.name,
    image: r.image,
    command: r.args,
    state: r.state,
    exitCode: r.exitCode ?? 0,
    createdAtMs: BigInt(r.createdAt),
  };
}

/**
 * Attach: the first message names the container; from then on stdin, stdin
 * EOF and signals flow to the helper, output and the exit status flow back,
 * with backpressure both ways. The exit status is sent only once the
 * container is settled (removed, with --rm), so a client that sees it can rely
 * on the state it implies.
 */
function attach(ctx: ServiceContext, stream: ServerDuplexStream<AttachRequest, AttachResponse>): void {
  let ref: string | undefined;
  let helperStream: ClientDuplexStream<HelperAttachRequest, HelperAttachResponse> | undefined;
  const queued: HelperAttachRequest[] = [];
  const fail = (err: unknown): void => {
    helperStream?.cancel();
    stream.emit("error", toGrpcError(err));
  };
  const toHelper = (msg: HelperAttachRequest): void => {
    if (!helperStream) queued.push(msg);
    else if (!helperStream.write(msg)) {
      stream.pause();
      helperStream.once("drain", () => stream.resume());
    }
  };
  const toClient = (msg: AttachResponse): void => {
    if (!stream.write(msg)) {
      helperStream?.pause();
      stream.once("drain", () => helperStream?.resume());
    }
  };

  stream.on("data", (req: AttachRequest) => {
    if (ref === undefined) {
      if (!req.open) return fail(new ContainerError("invalidArgument", "attach must first name a container"));
      ref = req.open;
      ctx.containers.helperFor(req.open).then(({ record, helper }) => {
        ref = record.id;
        const hs = helper.client.attach(new Metadata());
        helperStream = hs;
        const broken = (err: unknown): void => void ctx.containers.helperFailure(record, helper, err).then(fail);
        hs.write({ open: true });
        for (const msg of queued.splice(0)) hs.write(msg);
        hs.on("data", (res: HelperAttachResponse) => {
          if (res.stdout) toClient({ stdout: res.stdout });
          else if (res.stderr) toClient({ stderr: res.stderr });
          else if (res.exitCode !== undefined) {
            // The helper ends soon after; its stream closing is no error now.
            hs.removeListener("error", broken);
            hs.on("error", () => undefined);
            const fallback = res.exitCode;
            const finish = (exitCode: number): void => {
              stream.write({ exitCode });
              stream.end();
            };
            ctx.containers.settled(record.id).then(
              (settled) => finish(settled.exitCode ?? fallback),
              () => finish(fallback),
            );
          }
        });
        hs.on("error", broken);
      }, fail);
      return;
    }
    if (req.signal !== undefined) {
      ctx.containers.kill(ref, req.signal).catch((err: unknown) => ctx.logger.warn("signal not delivered", { err }));
    } else if (req.stdin !== undefined) toHelper({ stdin: req.stdin });
    else if (req.closeStdin) toHelper({ closeStdin: true });
    else if (req.resize) toHelper({ resize: req.resize });
  });
  stream.on("cancelled", () => helperStream?.cancel());
}

/**
 * Exec: the first message names the container and the process; the request
 * is completed from the container's record (its environment under the
 * caller's -e, its working directory unless -w) and relayed to the helper,
 * and everything after it flows through both ways with backpressure.
 */
function execRelay(ctx: ServiceContext, stream: ServerDuplexStream<ExecRequest, ExecResponse>): void {
  let helperStream: ClientDuplexStream<HelperExecRequest, HelperExecResponse> | undefined;
  let opened = false;
  const queued: HelperExecRequest[] = [];
  const fail = (err: unknown): void => {
    helperStream?.cancel();
    stream.emit("error", toGrpcError(err));
  };
  stream.on("data", (req: ExecRequest) => {
    if (!opened) {
      opened = true;
      const start = req.start;
      if (!start) return fail(new ContainerError("invalidArgument", "exec must first name a container and a command"));
      ctx.containers.helperFor(start.container).then(({ record, helper }) => {
        if (record.state !== "running") throw new ContainerError("invalidState", `container ${record.name} is not running`);
        if (start.args.length === 0) throw new ContainerError("invalidArgument", "no command given", { hint: "container exec CONTAINER COMMAND [ARG...]" });
        validateEnv(start.env);
        const cwd = start.workdir || record.cwd;
        if (!cwd.startsWith("/")) throw new ContainerError("invalidArgument", `the working directory must be absolute, not "${cwd}"`);
        const hs = helper.client.exec(new Metadata());
        helperStream = hs;
        hs.write({
          start: {
            args: start.args,
            env: mergeEnv(record.env, start.env),
            cwd,
            user: start.user || (record.user ?? ""),
            interactive: start.interactive,
            detach: start.detach,
            terminal: start.tty,
            size: start.size ?? { rows: 0, cols: 0 },
          },
        });
        for (const msg of queued.splice(0)) hs.write(msg);
        hs.on("data", (res: HelperExecResponse) => {
          if (!stream.write(res)) {
            hs.pause();
            stream.once("drain", () => hs.resume());
          }
        });
        // grpc-js ends the stream, then emits the error at once: a failed call must not look like a clean end.
        let failed = false;
        hs.on("end", () => failed || stream.end());
        hs.on("error", (err) => {
          failed = true;
          void ctx.containers.helperFailure(record, helper, err).then(fail);
        });
      }).catch(fail);
      return;
    }
    const msg: HelperExecRequest =
      req.stdin !== undefined ? { stdin: req.stdin } : req.closeStdin ? { closeStdin: true } : req.resize ? { resize: req.resize } : { signal: req.signal ?? 15 };
    if (!helperStream) queued.push(msg);
    else if (!helperStream.write(msg)) {
      stream.pause();
      helperStream.once("drain", () => stream.resume());
    }
  });
  stream.on("cancelled", () => helperStream?.cancel());
}

/** Copy out: the helper's tar stream relayed with backpressure; a container that does not run is invalidState. */
function copyOutRelay(ctx: ServiceContext, call: ServerWritableStream<CopyOutRequest, CopyChunk>): void {
  ctx.containers.helperFor(call.request.container).then(({ record, helper }) => {
    if (record.state !== "running") throw new ContainerError("invalidState", `container ${record.name} is not running`);
    const hs = helper.client.copyOut({ path: call.request.path }, new Metadata());
    call.on("cancelled", () => hs.cancel());
    hs.on("data", (chunk: HelperCopyChunk) => {
      if (!call.write({ data: chunk.data })) {
        hs.pause();
        call.once("drain", () => hs.resume());
      }
    });
    let failed = false; // as in execRelay
    hs.on("end", () => failed || call.end());
    hs.on("error", (err) => {
      failed = true;
      void ctx.containers.helperFailure(record, helper, err).then((e) => call.emit("error", toGrpcError(e)));
    });
  }).catch((err: unknown) => call.emit("error", toGrpcError(err)));
}

/** Copy in: `start` names the container and the destination; the data is relayed to its helper. */
function copyInRelay(ctx: ServiceContext, call: ServerReadableStream<CopyInRequest, CopyInResponse>, callback: sendUnaryData<CopyInResponse>): void {
  let upload: ClientWritableStream<HelperCopyInRequest> | undefined;
  const queued: HelperCopyInRequest[] = [];
  let failed = false;
  const fail = (err: unknown): void => {
    if (failed) return;
    failed = true;
    upload?.cancel();
    call.resume();
    callback(toGrpcError(err));
  };
  const forward = (msg: HelperCopyInRequest): void => {
    if (!upload) queued.push(msg);
    else if (!upload.write(msg)) {
      call.pause();
      upload.once("drain", () => call.resume());
    }
  };
  let ended = false;
  call.on("data", (req: CopyInRequest) => {
    if (upload || queued.length > 0 || failed) {
      if (req.data) forward({ data: req.data });
      return;
    }
    const start = req.start;
    if (!start) return fail(new ContainerError("invalidArgument", "copy-in must first name a container and a path"));
    queued.push({ start: { path: start.path, contents: start.contents } });
    ctx.containers.helperFor(start.container).then(({ record, helper }) => {
      if (record.state !== "running") throw new ContainerError("invalidState", `container ${record.name} is not running`);
      const u = helper.client.copyIn(new Metadata(), (err) => (err ? void ctx.containers.helperFailure(record, helper, err).then(fail) : callback(null, {})));
      upload = u;
      for (const msg of queued.splice(0)) u.write(msg);
      if (ended) u.end();
    }).catch(fail);
  });
  call.on("end", () => {
    ended = true;
    upload?.end();
  });
}

export function containerService(ctx: ServiceContext): ServerOf<typeof ContainerServiceDefinition> {
  return {
    ping: unary(async () => ({ version: ctx.version, pid: process.pid, accelerator: ctx.accelerator() })),
    shutdown: unary(async () => {
      setImmediate(ctx.shutdown);
      return {};
    }),
    createContainer: unary(async (req) => ({ id: (await ctx.containers.create(createRequest(req.config, ctx.defaults))).id })),
    startContainer: unary(async (req) => {
      await ctx.containers.start(req.id, req.size);
      return {};
    }),
    attach: (stream) => attach(ctx, stream),
    exec: (stream) => execRelay(ctx, stream),
    killContainer: unary(async (req) => {
      await ctx.containers.kill(req.id, req.signal || 15);
      return {};
    }),
    stopContainer: unary(async (req) => {
      await ctx.containers.stop(req.id, req.signal || 15, (req.timeoutSeconds ?? DEFAULT_STOP_TIMEOUT_S) * 1000);
      return {};
    }),
    inspectContainers: unary(async (req) => ({ containers: req.ids.map((id) => detail(ctx, ctx.containers.get(id))) })),
    statsContainers: unary(async (req) => ({
      containers: (await ctx.containers.stats(req.ids)).map(({ record, stats }) => ({
        id: record.id,
        name: record.name,
        cpuUsageUsec: stats.cpuUsageUsec,
        memoryBytes: stats.memoryCurrentBytes,
        memoryLimitBytes: stats.memoryMaxBytes,
        pids: stats.pidsCurrent,
        sampledNs: stats.uptimeNs,
        cpus: record.cpus,
        blockReadBytes: stats.ioReadBytes,
        blockWriteBytes: stats.ioWriteBytes,
      })),
    })),
    copyOut: (call: ServerWritableStream<CopyOutRequest, CopyChunk>) => copyOutRelay(ctx, call),
    copyIn: (call: ServerReadableStream<CopyInRequest, CopyInResponse>, callback: sendUnaryData<CopyInResponse>) => copyInRelay(ctx, call, callback),
    pruneContainers: unary(async () => ({ ids: await ctx.containers.prune() })),
    logs: (call: ServerWritableStream<LogsRequest, LogsResponse>) => void streamLogs(ctx, call),
    deleteContainer: unary(async (req) => {
      await ctx.containers.delete(req.id, req.force);
      return {};
    }),
    listContainers: unary(async (req) => ({ containers: ctx.containers.list(req.all).map(summary) })),
    ...imageService(ctx),
  };
}
