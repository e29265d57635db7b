// `container image load|pull|list`.
import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import type { Command } from "commander";
import { ContainerError } from "../../lib/errors/index.js";
import type { ImageSummary, LoadImageResponse, PullProgress } from "../../apiserver/api/gen/apiserver.js";
import { dockerCredentials } from "../../helpers/image/registry/credentials.js";
import { parseReference } from "../../helpers/image/reference.js";
import { connect, explain, request } from "../client.js";
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
  insecureRegistry: string[];
  maxConcurrentDownloads?: string;
}

function layerLine(p: PullProgress): string {
  const id = p.digest.replace(/^sha256:/, "").slice(0, 12);
  if (p.present) return `${id}: already present`;
  if (p.done === p.total) return `${id}: done ${formatBytes(Number(p.total))}`;
  return `${id}: downloading ${formatBytes(Number(p.done))} / ${formatBytes(Number(p.total))}`;
}

/**
 * Asks the apiserver to pull, drawing each layer's progress on stderr. The
 * credentials are the user's, read here from the docker config (as the docker
 * CLI does) and sent for the reference's registry only.
 */
async function pull(reference: string, flags: PullFlags): Promise<ImageSummary> {
  const { domain } = parseReference(reference);
  const credentials = await dockerCredentials(domain);
  const maxConcurrentDownloads = flags.maxConcurrentDownloads === undefined ? 0 : parseCount(flags.maxConcurrentDownloads);
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
      call.write({ reference, platform: flags.platform ?? "", insecureRegistries: flags.insecureRegistry, credentials, maxConcurrentDownloads });
      call.end();
    });
  } finally {
    client.close();
  }
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
    .description("load images from an OCI layout or `docker save` tar archive")
    .option("-i, --input <file>", "read from this file instead of stdin")
    .action(async (opts: { input?: string }) => {
      for (const i of await load(opts.input)) process.stdout.write(`Loaded image: ${i.reference}\n`);
    });
  image
    .command("pull")
    .description("fetch an image from its registry")
    .argument("<reference>", "e.g. alpine, ghcr.io/org/app:1, localhost:5000/demo@sha256:…")
    .option("--platform <os/arch[/variant]>", "the platform to pull from a multi-platform image (default: the host's)")
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
}
