// An OCI distribution (Docker registry v2) client for one repository: fetch a
// manifest by tag or digest, stream a blob. Knows HTTP, auth and the
// registry's error bodies; knows nothing of the content store.
//
// TLS is verified always (Node's fetch). Loopback registries (localhost,
// 127.0.0.0/8, ::1) and those named in `insecure` are spoken to over plain
// http instead, as Docker does for localhost.
import { ContainerError } from "../../../lib/errors/index.js";
import { MAX_DOCUMENT_BYTES, digestOf } from "../content/index.js";
import { INDEX_TYPES, MANIFEST_TYPES, type Descriptor } from "../oci.js";
import { DEFAULT_DOMAIN, familiarName, type ImageReference } from "../reference.js";
import { Authorizer, type Credentials } from "./auth.js";

/** Every manifest form we can use, so that the registry never downgrades to schema 1. */
const DOCUMENT_TYPES: readonly string[] = [...INDEX_TYPES, ...MANIFEST_TYPES];
export const MANIFEST_ACCEPT = DOCUMENT_TYPES.join(", ");

/** Docker Hub's API lives on another host than its name. */
const DOCKER_HUB_API = "registry-1.docker.io";
const MAX_REDIRECTS = 5;

export interface RegistryOptions {
  credentials?: Credentials;
  /** Registries (`host[:port]`, or `host` for every port) spoken to over plain http. */
  insecure?: string[];
  signal?: AbortSignal;
}

export interface FetchedManifest {
  bytes: Buffer;
  /** `sha256:` of the bytes, checked against what was asked for. */
  digest: string;
  /** From Content-Type; undefined when it names no manifest type (the document then says). */
  mediaType?: string;
}

function hostname(domain: string): string {
  return domain.startsWith("[") ? domain.slice(1, domain.indexOf("]")) : domain.replace(/:\d+$/, "");
}

/** Whether the registry `domain` (`host[:port]`) is spoken to over plain http. */
export function usesPlainHttp(domain: string, insecure: readonly string[] = []): boolean {
  const host = hostname(domain);
  if (host === "localhost" || host === "::1" || /^127(?:\.\d{1,3}){3}$/.test(host)) return true;
  return insecure.includes(domain) || insecure.includes(host);
}

/**
 * Checks fetched manifest bytes: their digest must be the one asked for (a
 * pull by digest) and the one the registry claims (Docker-Content-Digest).
 * Returns the digest.
 */
export function verifyManifest(bytes: Buffer, expected: { requested?: string; header?: string | null }, what: string): string {
  const digest = digestOf(bytes);
  for (const claimed of [expected.requested, expected.header]) {
    if (claimed && claimed.startsWith("sha256:") && claimed !== digest) {
      throw new ContainerError("invalidArgument", `${what} failed verification: content hashes to ${digest}, expected ${claimed}`);
    }
  }
  return digest;
}

/** The registry's own explanation: the first `errors[].code` and message of its JSON body. */
async function registryMessage(res: Response): Promise<{ code: string; text: string }> {
  const body = (await res.json().catch(() => ({}))) as { errors?: { code?: unknown; message?: unknown }[] };
  const first = Array.isArray(body.errors) ? body.errors[0] : undefined;
  const code = typeof first?.code === "string" ? first.code : "";
  const message = typeof first?.message === "string" ? first.message : "";
  return { code, text: message || code || `${res.status} ${res.statusText}` };
}

export class RegistryClient {
  private readonly base: string;
  private readonly auth: Authorizer;
  private readonly name: string;

  constructor(
    private readonly ref: ImageReference,
    private readonly options: RegistryOptions = {},
  ) {
    const host = ref.domain === DEFAULT_DOMAIN ? DOCKER_HUB_API : ref.domain;
    const scheme = usesPlainHttp(ref.domain, options.insecure) ? "http" : "https";
    this.base = `${scheme}://${host}/v2/${ref.path}`;
    this.name = familiarName(ref);
    this.auth = new Authorizer({
      host: ref.domain,
      scope: `repository:${ref.path}:pull`,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      get: (url, authorization) => this.follow(url, {}, authorization),
    });
  }

  /** The manifest or index `reference` (a tag or a digest) names, verified; at most MAX_DOCUMENT_BYTES. */
  async manifest(reference: string, expectedSize?: number): Promise<FetchedManifest> {
    const subject = `${this.name}${reference.startsWith("sha256:") ? "@" : ":"}${reference}`;
    const what = `manifest of ${subject}`;
    const res = await this.get(`manifests/${reference}`, { accept: MANIFEST_ACCEPT }, subject);
    const limit = expectedSize ?? MAX_DOCUMENT_BYTES;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of this.body(res, what)) {
      size += chunk.length;
      if (size > limit) throw new ContainerError("invalidArgument", `${what} is larger than ${limit} bytes`);
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    if (expectedSize !== undefined && size !== expectedSize) {
      throw new ContainerError("invalidArgument", `${what} failed verification: size is ${size}, expected ${expectedSize}`);
    }
    const digest = verifyManifest(bytes, { requested: reference, header: res.headers.get("docker-content-digest") }, what);
    const type = res.headers.get("content-type")?.split(";")[0]?.trim();
    return { bytes, digest, ...(type && DOCUMENT_TYPES.includes(type) ? { mediaType: type } : {}) };
  }

  /**
   * The blob's bytes as they arrive, unverified: the caller hashes them into
   * the content store, whose commit checks digest and size. A stream that
   * runs past `desc.size` fails at once rather than filling the disk.
   */
  async *blob(desc: Descriptor, onBytes: (done: number) => void = () => undefined): AsyncGenerator<Buffer> {
    const what = `blob ${desc.digest}`;
    const res = await this.get(`blobs/${desc.digest}`, {}, `${what} of ${this.name}`);
    let done = 0;
    for await (const chunk of this.body(res, what)) {
      done += chunk.length;
      if (done > desc.size) throw new ContainerError("invalidArgument", `${what} is larger than the ${desc.size} bytes its descriptor says`);
      onBytes(done);
      yield chunk;
    }
  }

  /** GET `<base>/<rel>`, answering auth challenges and following redirects; a non-2xx answer throws. */
  private async get(rel: string, headers: Record<string, string>, subject: string): Promise<Response> {
    const url = new URL(`${this.base}/${rel}`);
    const sent = this.auth.header();
    let res = await this.follow(url, headers, await sent);
    if (res.status === 401) {
      const retry = await this.auth.challenged(sent, res.headers.get("www-authenticate"));
      if (retry !== undefined) {
        await res.body?.cancel();
        res = await this.follow(url, headers, retry);
      }
    }
    if (res.ok) return res;
    throw await this.failure(res, subject);
  }

  /** Follows redirects by hand so that Authorization never leaves the registry's origin. */
  private async follow(url: URL, headers: Record<string, string>, authorization: string | undefined): Promise<Response> {
    let target = url;
    for (let hop = 0; ; hop++) {
      const sameOrigin = target.origin === url.origin;
      const res = await this.send(target, { ...headers, ...(authorization && sameOrigin ? { authorization } : {}) });
      const location = res.headers.get("location");
      if (res.status < 300 || res.status >= 400 || location === null) return res;
      await res.body?.cancel();
      if (hop === MAX_REDIRECTS) throw new ContainerError("unavailable", `registry ${this.ref.domain} redirected more than ${MAX_REDIRECTS} times`);
      target = new URL(location, target);
    }
  }

  /** One HTTP GET, redirects not followed; network failures become `unavailable`, an abort `cancelled`. */
  private async send(url: URL, headers: Record<string, string>): Promise<Response> {
    try {
      return await fetch(url, { headers, redirect: "manual", ...(this.options.signal ? { signal: this.options.signal } : {}) });
    } catch (err) {
      throw this.networkError(err, `cannot reach registry ${url.host}`);
    }
  }

  private async *body(res: Response, what: string): AsyncGenerator<Buffer> {
    if (!res.body) return;
    try {
      for await (const chunk of res.body) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    } catch (err) {
      throw this.networkError(err, `download of ${what} from ${this.ref.domain} failed`);
    }
  }

  private networkError(err: unknown, message: string): ContainerError {
    if (err instanceof ContainerError) return err;
    if (this.options.signal?.aborted) return new ContainerError("cancelled", "pull cancelled", { cause: err });
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    const tls = /CERT|SSL|TLS/i.test(why);
    return new ContainerError("unavailable", `${message}: ${why}`, {
      cause: err,
      ...(tls ? { hint: `if ${this.ref.domain} serves plain http, pass --insecure-registry ${this.ref.domain}` } : {}),
    });
  }

  private async failure(res: Response, subject: string): Promise<ContainerError> {
    const { code, text } = await registryMessage(res);
    const registry = this.ref.domain;
    if (res.status === 404) {
      return code === "NAME_UNKNOWN"
        ? new ContainerError("notFound", `repository ${this.name} not found`)
        : new ContainerError("notFound", `${subject} not found (${text})`);
    }
    if (res.status === 401 || res.status === 403) {
      // As Docker says it: registries answer so for missing repositories too.
      return this.options.credentials
        ? new ContainerError("notFound", `pull access denied for ${this.name}: the repository does not exist or the credentials do not allow it`)
        : new ContainerError("notFound", `pull access denied for ${this.name}: the repository does not exist or needs credentials`, {
            hint: `add credentials for ${registry} to ~/.docker/config.json`,
          });
    }
    if (res.status === 429) return new ContainerError("resourceExhausted", `registry ${registry} is rate-limiting pulls: ${text}`);
    if (res.status >= 500) return new ContainerError("unavailable", `registry ${registry} failed: ${text}`);
    return new ContainerError("invalidArgument", `registry ${registry} refused ${subject}: ${text}`);
  }
}
