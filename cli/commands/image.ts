// `container image load|pull|list|tag|rm|inspect|save|push|prune`.
import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import type { Command } from "commander";
import { ContainerError } from "../../lib/errors/index.js";
import type { ImageDetail, ImageSummary, LoadImageResponse, PullProgress, PushedImage } from "../../apiserver/api/gen/apiserver.js";
import { registryCredentials } from "../../helpers/image/registry/credentials.js";
import { formatPlatform, hostPlatform, parsePlatformString } from "../../helpers/image/oci.js";
import { parseReference } from "../../helpers/image/reference.js";
import { connect, explain, readChunks, request } from "../client.js";
import { checkArchiveOutput, writeArchive } from "../stdio.js";
import { parseCount, parseFormat } from "../parse.js";
import { progressLines } from "../render/progress.js";
import { formatBytes, renderJson, renderTable } from "../render/table.js";

async function load(input: string | undefined): Promise<ImageSummary[]> {
  if (input !== undefined) {
    await access(input).catch((err: unknown) => {
      throw new ContainerError("notFound", `cannot read ${input}`, { cause: err });
    });
  } else if (process.stdin.isTTY) {
    throw new ContainerError("invalidArgument", "no image archive given", { hint: "use -i FILE, or pipe the archive to stdin" });
  }
  const source = input === undefined ? process.stdin : createReadStream(input, { highWaterMark: 1 << 20 });
  const client = connect();
  try {
    const res = await new Promise<LoadImageResponse>((resolve, reject) => {
      let response: LoadImageResponse | undefined;
      const upload = client.stream("loadImage", {
        message: (value) => (response = value),
        end: () => (response ? resolve(response) : reject(new ContainerError("internal", "the apiserver sent no reply to the upload"))),
        error: (err) => reject(explain(err)),
      });
      source.on("data", (chunk: Buffer) => {
        if (!upload.write({ chunk })) {
          source.pause();
          upload.onceDrain(() => source.resume());
        }
      });
      source.on("end", () => upload.end());
      source.on("error", (err: Error) => {
        upload.cancel();
        reject(new ContainerError("invalidArgument", `cannot read the image archive: ${err.message}`));
      });
    });
    return res.images;
  } finally {
    client.close();
  }
}

interface PullFlags {
  platform?: string;
  os?: string;
  arch?: string;
  insecureRegistry: string[];
  maxConcurrentDownloads?: string;
}

function layerLine(p: PullProgress, verb: "pull" | "push" = "pull"): string {
  const id = p.digest.replace(/^sha256:/, "").slice(0, 12);
  if (p.present) return `${id}: ${verb === "pull" ? "already present" : "already on the registry"}`;
  if (p.done === p.total) return `${id}: ${verb === "pull" ? "done" : "pushed"} ${formatBytes(Number(p.total))}`;
  return `${id}: ${verb === "pull" ? "downloading" : "uploading"} ${formatBytes(Number(p.done))} / ${formatBytes(Number(p.total))}`;
}

/** The platform asked for: --platform, else --os/--arch over the host's (the apiserver's default), else none. */
export function pullPlatform(flags: Pick<PullFlags, "platform" | "os" | "arch">): string {
  if (flags.platform !== undefined) {
    if (flags.os !== undefined || flags.arch !== undefined) throw new ContainerError("invalidArgument", "--platform cannot be combined with --os or --arch");
    return formatPlatform(parsePlatformString(flags.platform));
  }
  if (flags.os === undefined && flags.arch === undefined) return "";
  const host = hostPlatform();
  return formatPlatform(parsePlatformString(`${flags.os ?? host.os}/${flags.arch ?? host.architecture}`));
}

/**
 * Asks the apiserver to pull, drawing each layer's progress on stderr. The
 * credentials are the user's, read here (ours from `registry login`, else the
 * docker config and its credential helpers, as the docker CLI does) and sent
 * for the reference's registry only.
 */
async function pull(reference: string, flags: PullFlags): Promise<ImageSummary> {
  const { domain } = parseReference(reference);
  const credentials = await registryCredentials(domain);
  const maxConcurrentDownloads = flags.maxConcurrentDownloads === undefined ? 0 : parseCount(flags.maxConcurrentDownloads);
  const platform = pullPlatform(flags);
  const lines = progressLines(process.stderr);
  const client = connect();
  try {
    return await new Promise<ImageSummary>((resolve, reject) => {
      let image: ImageSummary | undefined;
      const call = client.stream("pullImage", {
        message: (res) => {
          if (res.progress) lines.set(res.progress.digest, layerLine(res.progress), res.progress.present || res.progress.done === res.progress.total);
          else if (res.image) image = res.image;
        },
        end: () => (image ? resolve(image) : reject(new ContainerError("internal", "the apiserver ended the pull without a result"))),
        error: (err) => reject(explain(err)),
      });
      call.write({ reference, platform, insecureRegistries: flags.insecureRegistry, credentials, maxConcurrentDownloads });
      call.end();
    });
  } finally {
    client.close();
  }
}

interface PushFlags {
  insecure?: boolean;
  maxConcurrentUploads?: string;
}

/** Asks the apiserver to push, drawing each blob's progress on stderr; credentials as for pull. */
async function push(reference: string, flags: PushFlags): Promise<PushedImage> {
  const { domain } = parseReference(reference);
  const credentials = await registryCredentials(domain);
  const maxConcurrentUploads = flags.maxConcurrentUploads === undefined ? 0 : parseCount(flags.maxConcurrentUploads);
  const lines = progressLines(process.stderr);
  const client = connect();
  try {
    return await new Promise<PushedImage>((resolve, reject) => {
      let image: PushedImage | undefined;
      const call = client.stream("pushImage", {
        message: (res) => {
          if (res.progress) lines.set(res.progress.digest, layerLine(res.progress, "push"), res.progress.present || res.progress.done === res.progress.total);
          else if (res.image) image = res.image;
        },
        end: () => (image ? resolve(image) : reject(new ContainerError("internal", "the apiserver ended the push without a result"))),
        error: (err) => reject(explain(err)),
      });
      call.write({ reference, insecureRegistries: flags.insecure ? [domain] : [], credentials, maxConcurrentUploads });
      call.end();
    });
  } finally {
    client.close();
  }
}

/** The archive of `references` as the apiserver streams it; errors surface on the stream. */

async function save(references: string[], opts: { output?: string; format: string }): Promise<void> {
  if (opts.format !== "oci" && opts.format !== "docker") {
    throw new ContainerError("invalidArgument", `unknown archive format "${opts.format}"`, { hint: "use oci or docker" });
  }
  checkArchiveOutput(opts.output);
  const client = connect();
  try {
    await writeArchive(readChunks(client, "saveImages", { references, format: opts.format }), opts.output);
  } finally {
    client.close();
  }
}

/** `inspect` as JSON: the record, the shown manifest's platform, config and layers; sizes as numbers. */
function inspectJson(images: ImageDetail[]): string {
  return renderJson(
    images.map((i) => ({
      reference: i.reference,
      digest: i.digest,
      mediaType: i.mediaType,
      size: i.size,
      ...(i.createdAt ? { createdAt: i.createdAt } : {}),
      platforms: i.platforms,
      manifestDigest: i.manifestDigest,
      platform: i.platform,
      configDigest: i.configDigest,
      config: i.config,
      layers: i.layers,
    })),
  );
}

function splitReference(ref: string): [string, string] {
  const at = ref.indexOf("@");
  if (at !== -1) return [ref.slice(0, at), ref.slice(at + 1)];
  const colon = ref.lastIndexOf(":");
  return colon > ref.lastIndexOf("/") ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, "<none>"];
}

function printImages(images: ImageSummary[], format: "json" | "table", quiet: boolean): void {
  if (format === "json") {
    process.stdout.write(renderJson(images));
  } else if (quiet) {
    for (const i of images) process.stdout.write(`${i.digest}\n`);
  } else {
    const rows = images.map((i) => {
      const [name, tag] = splitReference(i.reference);
      return [name, tag, i.digest.replace(/^sha256:/, "").slice(0, 12), i.platforms.join(","), formatBytes(Number(i.size))];
    });
    process.stdout.write(renderTable(["NAME", "TAG", "DIGEST", "PLATFORMS", "SIZE"], rows));
  }
}

export function registerImage(program: Command): void {
  const image = program.command("image").alias("i").description("manage images");
  image
    .command("load")
    .description("load images from an OCI image layout or `docker save` tar archive")
    .option("-i, --input <file>", "read from this file instead of stdin")
    .action(async (opts: { input?: string }) => {
      for (const i of await load(opts.input)) process.stdout.write(`Loaded image: ${i.reference}\n`);
    });
  image
    .command("pull")
    .description("fetch an image from its registry")
    .argument("<reference>", "e.g. alpine, ghcr.io/org/app:1, localhost:5000/demo@sha256:…")
    .option("--platform <os/arch[/variant]>", "the platform to pull from a multi-platform image (default: the host's)")
    .option("--os <os>", "the platform's OS, with the host's architecture unless --arch")
    .option("--arch <arch>", "the platform's architecture (amd64, arm64, …), with the host's OS unless --os")
    .option("--insecure-registry <host[:port]>", "speak plain http to this registry (repeatable; loopback ones always are)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option("--max-concurrent-downloads <n>", "layers downloaded at once (default 3)")
    .action(async (reference: string, flags: PullFlags) => {
      const pulled = await pull(reference, flags);
      process.stdout.write(`Pulled image: ${pulled.reference}\nDigest: ${pulled.digest}\n`);
    });
  image
    .command("list")
    .alias("ls")
    .description("list images")
    .option("-q, --quiet", "only digests")
    .option("--format <format>", "json or table", "table")
    .action(async (opts: { quiet?: boolean; format: string }) => {
      const format = parseFormat(opts.format);
      const client = connect();
      try {
        printImages((await request(client, "listImages", {})).images, format, Boolean(opts.quiet));
      } finally {
        client.close();
      }
    });
  image
    .command("tag")
    .description("give an image another name")
    .argument("<source>", "name, digest or digest prefix of an image")
    .argument("<target>", "the new name, NAME[:TAG]")
    .action(async (source: string, target: string) => {
      const client = connect();
      try {
        await request(client, "tagImage", { source, target });
      } finally {
        client.close();
      }
    });
  image
    .command("delete")
    .alias("rm")
    .description("remove image names (or, by digest, images) and the content no image needs any more")
    .argument("<image...>", "names, digests or digest prefixes")
    .option("-f, --force", "remove a name containers use (the image stays, untagged, while they exist), and every name of an image given by digest")
    .action(async (references: string[], opts: { force?: boolean }) => {
      const client = connect();
      try {
        const res = await request(client, "removeImages", { references, force: Boolean(opts.force) });
        for (const r of res.untagged) process.stdout.write(`Untagged: ${r}\n`);
        for (const d of res.deleted) process.stdout.write(`Deleted: ${d}\n`);
      } finally {
        client.close();
      }
    });
  image
    .command("inspect")
    .description("show images in full: digest, platform, config, layers, size")
    .argument("<image...>", "names, digests or digest prefixes")
    .option("--format <format>", "json or table", "json")
    .action(async (references: string[], opts: { format: string }) => {
      const format = parseFormat(opts.format);
      const client = connect();
      try {
        const { images } = await request(client, "inspectImages", { references });
        if (format === "json") {
          process.stdout.write(inspectJson(images));
          return;
        }
        const rows = images.map((i) => [i.reference, i.digest.replace(/^sha256:/, "").slice(0, 12), i.platform, String(i.layers.length), formatBytes(Number(i.size))]);
        process.stdout.write(renderTable(["REFERENCE", "DIGEST", "PLATFORM", "LAYERS", "SIZE"], rows));
      } finally {
        client.close();
      }
    });
  image
    .command("save")
    .description("write images as a tar archive: an OCI image layout, or docker save's format")
    .argument("<image...>", "names, digests or digest prefixes")
    .option("-o, --output <file>", "write to a file instead of stdout")
    .option("--format <format>", "oci or docker", "oci")
    .action(async (references: string[], opts: { output?: string; format: string }) => {
      await save(references, opts);
    });
  image
    .command("push")
    .description("upload an image to the registry its name says")
    .argument("<reference>", "a local name, e.g. localhost:5000/app:1 (tag the image first)")
    .option("--insecure", "speak plain http to the registry (loopback ones always are)")
    .option("--max-concurrent-uploads <n>", "blobs uploaded at once (default 3)")
    .action(async (reference: string, flags: PushFlags) => {
      const pushed = await push(reference, flags);
      process.stdout.write(`Pushed image: ${pushed.reference}\nDigest: ${pushed.digest}\n`);
    });
  image
    .command("prune")
    .description("remove untagged images, and the content no image needs")
    .option("-a, --all", "remove every image no container uses")
    .action(async (opts: { all?: boolean }) => {
      const client = connect();
      try {
        const res = await request(client, "pruneImages", { all: Boolean(opts.all) });
        for (const r of res.removed) process.stdout.write(`Deleted: ${r}\n`);
        process.stdout.write(`Total reclaimed space: ${formatBytes(Number(res.reclaimedBytes))}\n`);
      } finally {
        client.close();
      }
    });
}
