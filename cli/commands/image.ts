// `container image load|list`.
import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import type { Command } from "commander";
import { ContainerError } from "../../lib/errors/index.js";
import type { ImageSummary, LoadImageResponse } from "../../apiserver/api/gen/apiserver.js";
import { connect, explain, request } from "../client.js";
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

function splitReference(ref: string): [string, string] {
  const at = ref.indexOf("@");
  if (at !== -1) return [ref.slice(0, at), ref.slice(at + 1)];
  const colon = ref.lastIndexOf(":");
  return colon > ref.lastIndexOf("/") ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, "<none>"];
}

function printImages(images: ImageSummary[], format: string | undefined, quiet: boolean): void {
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
    .command("list")
    .alias("ls")
    .description("list images")
    .option("-q, --quiet", "only digests")
    .option("--format <format>", "json or table", "table")
    .action(async (opts: { quiet?: boolean; format?: string }) => {
      if (opts.format !== "json" && opts.format !== "table") {
        throw new ContainerError("invalidArgument", `unknown format "${opts.format}"`, { hint: "use json or table" });
      }
      const client = connect();
      try {
        printImages((await request(client, "listImages", {})).images, opts.format, Boolean(opts.quiet));
      } finally {
        client.close();
      }
    });
}
