// The image handlers of the ContainerService: validate, delegate to the image
// store, map errors at the wire. The store knows nothing of containers, so
// the images containers were created from (what removal and garbage
// collection must keep) are handed to it from the container manager's records.
import { PassThrough } from "node:stream";
import type { ServerReadableStream, ServerWritableStream, sendUnaryData } from "@grpc/grpc-js";
import { ContainerError } from "../../lib/errors/index.js";
import { toGrpcError, unary, type ServerOf } from "../../lib/grpc/index.js";
import { diskUsage, formatPlatform, parsePlatformString } from "../../helpers/image/index.js";
import type { ImageDetail as StoreImageDetail, ImageRecord, ImageUsers, SaveFormat } from "../../helpers/image/types.js";
import type {
  ContainerServiceDefinition,
  ImageDetail,
  ImageSummary,
  LoadImageRequest,
  LoadImageResponse,
  PullImageRequest,
  PullImageResponse,
  PushImageRequest,
  PushImageResponse,
  SaveImagesChunk,
  SaveImagesRequest,
  SystemDiskUsageResponse,
} from "../api/gen/apiserver.js";
import type { ServiceContext } from "./container-service.js";

type ImageMethods =
  | "loadImage"
  | "listImages"
  | "pullImage"
  | "tagImage"
  | "removeImages"
  | "inspectImages"
  | "saveImages"
  | "pushImage"
  | "pruneImages"
  | "systemDiskUsage";

export function imageSummary(image: ImageRecord): ImageSummary {
  return {
    reference: image.reference,
    digest: image.digest,
    size: BigInt(image.size),
    platforms: image.platforms.map(formatPlatform),
  };
}

function imageDetail(d: StoreImageDetail): ImageDetail {
  return {
    reference: d.reference,
    digest: d.digest,
    mediaType: d.mediaType,
    size: BigInt(d.size),
    createdAt: d.createdAt ?? "",
    platforms: d.platforms.map(formatPlatform),
    manifestDigest: d.manifestDigest,
    platform: formatPlatform(d.platform),
    configDigest: d.configDigest,
    config: d.config,
    layers: d.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, size: BigInt(l.size) })),
  };
}

/** Every container's image manifest, with the containers' names (stopped ones too: their rootfs is an overlay of it). */
function imageUsers(ctx: ServiceContext): ImageUsers {
  const users = new Map<string, string[]>();
  for (const c of ctx.containers.list(true)) users.set(c.imageDigest, [...(users.get(c.imageDigest) ?? []), c.name]);
  return users;
}

/** Pulls into the image store, relaying its progress; the call's cancellation aborts the pull. */
async function pullImage(ctx: ServiceContext, call: ServerWritableStream<PullImageRequest, PullImageResponse>): Promise<void> {
  const abort = new AbortController();
  call.on("cancelled", () => abort.abort());
  try {
    const req = call.request;
    const image = await ctx.images.pull(req.reference, {
      ...(req.platform ? { platform: parsePlatformString(req.platform) } : {}),
      insecureRegistries: req.insecureRegistries,
      ...(req.credentials?.username ? { credentials: req.credentials } : {}),
      ...(req.maxConcurrentDownloads ? { maxConcurrentDownloads: req.maxConcurrentDownloads } : {}),
      onProgress: (p) => call.write({ progress: { digest: p.digest, done: BigInt(p.done), total: BigInt(p.total), present: p.present } }),
      signal: abort.signal,
    });
    call.write({ image: imageSummary(image) });
    call.end();
  } catch (err) {
    call.emit("error", toGrpcError(err));
  }
}

/** Pushes from the image store, relaying its progress; the call's cancellation aborts the push. */
async function pushImage(ctx: ServiceContext, call: ServerWritableStream<PushImageRequest, PushImageResponse>): Promise<void> {
  const abort = new AbortController();
  call.on("cancelled", () => abort.abort());
  try {
    const req = call.request;
    const pushed = await ctx.images.push(req.reference, {
      insecureRegistries: req.insecureRegistries,
      ...(req.credentials?.username ? { credentials: req.credentials } : {}),
      ...(req.maxConcurrentUploads ? { maxConcurrentUploads: req.maxConcurrentUploads } : {}),
      onProgress: (p) => call.write({ progress: { digest: p.digest, done: BigInt(p.done), total: BigInt(p.total), present: p.present } }),
      signal: abort.signal,
    });
    call.write({ image: { reference: pushed.reference, digest: pushed.digest, size: BigInt(pushed.size) } });
    call.end();
  } catch (err) {
    call.emit("error", toGrpcError(err));
  }
}

/** Streams the store's archive with backpressure; a cancelled call stops it (and releases the store). */
async function saveImages(ctx: ServiceContext, call: ServerWritableStream<SaveImagesRequest, SaveImagesChunk>): Promise<void> {
  try {
    const format = call.request.format || "oci";
    const archive = await ctx.images.save(call.request.references, format as SaveFormat);
    let cancelled = false;
    const stopped = new Promise<void>((resolve) =>
      call.once("cancelled", () => {
        cancelled = true;
        archive.destroy();
        resolve();
      }),
    );
    for await (const data of archive) {
      if (!call.write({ data: data as Buffer })) await Promise.race([new Promise((resolve) => call.once("drain", resolve)), stopped]);
      if (cancelled) return;
    }
    call.end();
  } catch (err) {
    call.emit("error", toGrpcError(err));
  }
}

async function systemDiskUsage(ctx: ServiceContext): Promise<SystemDiskUsageResponse> {
  const usage = await ctx.images.usage(imageUsers(ctx));
  const containers = await Promise.all(
    ctx.containers.list(true).map(async (c) => ({ id: c.id, name: c.name, image: c.image, state: c.state, size: await diskUsage(ctx.containers.bundleOf(c.id)) })),
  );
  const sum = (xs: { size: number }[]): number => xs.reduce((n, x) => n + x.size, 0);
  return {
    totals: [
      { type: "images", total: usage.images.total, active: usage.images.active, size: BigInt(usage.images.bytes), reclaimable: BigInt(usage.images.reclaimable) },
      { type: "snapshots", total: usage.snapshots.total, active: usage.snapshots.active, size: BigInt(usage.snapshots.bytes), reclaimable: BigInt(usage.snapshots.reclaimable) },
      {
        type: "containers",
        total: containers.length,
        active: containers.filter((c) => c.state === "running").length,
        size: BigInt(sum(containers)),
        // What `container prune` frees: the stopped ones.
        reclaimable: BigInt(sum(containers.filter((c) => c.state === "stopped"))),
      },
    ],
    images: usage.perImage.map((i) => ({ references: i.references, digest: i.digest, size: BigInt(i.size), containers: i.containers })),
    containers: containers.map((c) => ({ ...c, size: BigInt(c.size) })),
  };
}

export function imageService(ctx: ServiceContext): Pick<ServerOf<typeof ContainerServiceDefinition>, ImageMethods> {
  return {
    loadImage: (stream: ServerReadableStream<LoadImageRequest, LoadImageResponse>, callback: sendUnaryData<LoadImageResponse>) => {
      const body = new PassThrough();
      stream.on("data", (req: LoadImageRequest) => body.write(req.chunk));
      stream.on("end", () => body.end());
      stream.on("error", (err) => body.destroy(err));
      ctx.images.load(body).then(
        (images) => callback(null, { images: images.map(imageSummary) }),
        (err: unknown) => {
          body.resume();
          callback(toGrpcError(err));
        },
      );
    },
    listImages: unary(async () => ({ images: (await ctx.images.list()).map(imageSummary) })),
    pullImage: (call: ServerWritableStream<PullImageRequest, PullImageResponse>) => void pullImage(ctx, call),
    tagImage: unary(async (req) => {
      if (!req.source || !req.target) throw new ContainerError("invalidArgument", "tag needs a source and a target", { hint: "container image tag SOURCE TARGET" });
      return { image: imageSummary(await ctx.images.tag(req.source, req.target)) };
    }),
    removeImages: unary(async (req) => {
      const removed = await ctx.images.remove(req.references, { force: req.force, users: imageUsers(ctx) });
      return { untagged: removed.untagged, deleted: removed.deleted, reclaimedBytes: BigInt(removed.reclaimedBytes) };
    }),
    inspectImages: unary(async (req) => {
      if (req.references.length === 0) throw new ContainerError("invalidArgument", "no image named", { hint: "container image inspect IMAGE..." });
      const images: ImageDetail[] = [];
      for (const ref of req.references) images.push(imageDetail(await ctx.images.inspect(ref)));
      return { images };
    }),
    saveImages: (call: ServerWritableStream<SaveImagesRequest, SaveImagesChunk>) => void saveImages(ctx, call),
    pushImage: (call: ServerWritableStream<PushImageRequest, PushImageResponse>) => void pushImage(ctx, call),
    pruneImages: unary(async (req) => {
      const pruned = await ctx.images.prune({ all: req.all, users: imageUsers(ctx) });
      return { removed: pruned.removed, deletedBlobs: pruned.blobs, deletedSnapshots: pruned.snapshots, reclaimedBytes: BigInt(pruned.reclaimedBytes) };
    }),
    systemDiskUsage: unary(() => systemDiskUsage(ctx)),
  };
}
