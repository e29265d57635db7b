// An OCI distribution (Docker registry v2) client for one repository: fetch a
// manifest by tag or digest, stream a blob; with `push`, ask whether a blob is
// there, upload one (monolithic, or chunked when large) and put a manifest.
// Knows HTTP, auth and the registry's error bodies; knows nothing of the
// content store.
//
// TLS is verified always (Node's fetch: its CA store plus the PEM file in
// NODE_EXTRA_CA_CERTS, read at process start). Loopback registries
// (localhost, 127.0.0.0/8, ::1) and those named in `insecure` are spoken to
// over plain http instead, as Docker does for localhost; nothing else is.
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
/** Blobs up to this size go up in one PUT; bigger ones in PATCHes of this size (each held in memory once). */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;

export interface RegistryOptions {
  credentials?: Credentials;
  /** Registries (`host[:port]`, or `host` for every port) spoken to over plain http. */
  insecure?: string[];
  signal?: AbortSignal;
  /** Asks for push access too: the token scope is `pull,push`, and refusals say push. */
  push?: boolean;
}

export interface FetchedManifest {
  bytes: Buffer;
  /** `sha256:` of the bytes, checked against what was asked for. */
  digest: string;
  /** From Content-Type; undefined when it names no manifest type (the document then says). */
  mediaType?: string;
}

/** Failures worth another try: the network, the registry's 5xx, a download cut short. */
const TRANSIENT = new WeakSet<object>();

function transient(err: ContainerError): ContainerError {
  TRANSIENT.add(err);
  return err;
}

/** Whether `err` came from a failure that may not happen again (a dropped connection, a 5xx). */
export function isTransient(err: unknown): boolean {
  return typeof err === "object" && err !== null && TRANSIENT.has(err);
}

const UNREACHABLE = ["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH"];

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

interface Init {
  method: string;
  headers: Record<string, string>;
  body?: Buffer;
}

/** `source` regrouped into chunks of `size` bytes (the last one shorter). */
async function* chunked(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const data of source) {
    let rest = data;
    while (held + rest.length >= size) {
      parts.push(rest.subarray(0, size - held));
      rest = rest.subarray(size - held);
      yield Buffer.concat(parts);
      parts = [];
      held = 0;
    }
    if (rest.length > 0) {
      parts.push(rest);
      held += rest.length;
    }
  }
  if (held > 0) yield Buffer.concat(parts);
}

export class RegistryClient {
  private readonly origin: string;
  private readonly base: string;
  private readonly auth: Authorizer;
  private readonly name: string;

  constructor(
    private readonly ref: ImageReference,
    private readonly options: RegistryOptions = {},
  ) {
    const host = ref.domain === DEFAULT_DOMAIN ? DOCKER_HUB_API : ref.domain;
    const scheme = usesPlainHttp(ref.domain, options.insecure) ? "http" : "https";
    this.origin = `${scheme}://${host}`;
    this.base = `${this.origin}/v2/${ref.path}`;
    this.name = ref.path ? familiarName(ref) : ref.domain;
    this.auth = new Authorizer({
      host: ref.domain,
      scope: ref.path ? `repository:${ref.path}:${options.push ? "pull,push" : "pull"}` : "",
      ...(options.credentials ? { credentials: options.credentials } : {}),
      get: (url, authorization) => this.follow(url, { method: "GET", headers: {} }, authorization),
    });
  }

  /**
   * A client for the registry `domain` itself, not a repository: for
   * checkLogin() only.
   */
  static forRegistry(domain: string, options: RegistryOptions = {}): RegistryClient {
    return new RegistryClient({ domain, path: "" }, options);
  }

  /**
   * Checks that the options' credentials open the registry, as `docker login`
   * does: GET /v2/, answering its challenge (a token for no scope, or Basic).
   */
  async checkLogin(): Promise<void> {
    const res = await this.request("GET", new URL(`${this.origin}/v2/`), { headers: {}, allow: [401, 403] }, `registry ${this.ref.domain}`);
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) {
      const who = this.options.credentials ? ` of ${this.options.credentials.username}` : "";
      throw new ContainerError("invalidArgument", `registry ${this.ref.domain} rejected the credentials${who}`);
    }
  }

  /** The manifest or index `reference` (a tag or a digest) names, verified; at most MAX_DOCUMENT_BYTES. */
  async manifest(reference: string, expectedSize?: number): Promise<FetchedManifest> {
    const subject = `${this.name}${reference.startsWith("sha256:") ? "@" : ":"}${reference}`;
    const what = `manifest of ${subject}`;
    const res = await this.request("GET", `manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT } }, subject);
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
   * The blob's bytes from `offset` on (a Range request; 0: all of it) as they
   * arrive, unverified: the caller hashes them into the content store, whose
   * commit checks digest and size. `start` is where the bytes begin: `offset`,
   * or 0 when the registry ignored the range. A stream that runs past
   * `desc.size` fails at once rather than filling the disk; one that ends
   * short fails as a transient error (see isTransient).
   */
  async blob(desc: Descriptor, offset = 0, onBytes: (done: number) => void = () => undefined): Promise<{ start: number; chunks: AsyncGenerator<Buffer> }> {
    const what = `blob ${desc.digest}`;
    const subject = `${what} of ${this.name}`;
    const ranged: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    let res = await this.request("GET", `blobs/${desc.digest}`, { headers: ranged, allow: [416] }, subject);
    if (res.status === 416) {
      // The registry holds less than the partial: start over.
      await res.body?.cancel();
      res = await this.request("GET", `blobs/${desc.digest}`, { headers: {} }, subject);
    }
    let start = 0;
    if (res.status === 206) {
      const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
      if (!m || Number(m[1]) !== offset) {
        await res.body?.cancel();
        throw new ContainerError("invalidArgument", `registry ${this.ref.domain} answered a range request for ${what} with the range "${res.headers.get("content-range")}"`);
      }
      start = offset;
    }
    const body = this.body(res, what);
    const domain = this.ref.domain;
    async function* chunks(): AsyncGenerator<Buffer> {
      let done = start;
      for await (const chunk of body) {
        done += chunk.length;
        if (done > desc.size) throw new ContainerError("invalidArgument", `${what} is larger than the ${desc.size} bytes its descriptor says`);
        onBytes(done);
        yield chunk;
      }
      if (done < desc.size) throw transient(new ContainerError("unavailable", `download of ${what} from ${domain} ended after ${done} of ${desc.size} bytes`));
    }
    return { start, chunks: chunks() };
  }

  /** Whether the repository has the blob (HEAD). */
  async hasBlob(digest: string): Promise<boolean> {
    const res = await this.request("HEAD", `blobs/${digest}`, { headers: {}, allow: [404] }, `blob ${digest} of ${this.name}`);
    return res.status !== 404;
  }

  /**
   * Uploads a blob of `desc.size` bytes read from `source`: a POST opens the
   * upload, then one PUT carries it all, or (over `chunkBytes`) PATCHes carry
   * it in chunks and an empty PUT closes it. The registry checks the digest.
   */
  async uploadBlob(
    desc: Descriptor,
    source: AsyncIterable<Buffer>,
    options: { chunkBytes?: number; onBytes?: (done: number) => void } = {},
  ): Promise<void> {
    const subject = `upload of blob ${desc.digest} to ${this.name}`;
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    let location = await this.location(await this.request("POST", "blobs/uploads/", { headers: {} }, subject), subject);
    let done = 0;
    let last: Buffer = Buffer.alloc(0);
    for await (const chunk of chunked(source, chunkBytes)) {
      if (done + chunk.length > desc.size) throw new ContainerError("internal", `blob ${desc.digest} is larger than its ${desc.size} bytes`);
      if (desc.size <= chunkBytes) {
        last = chunk;
      } else {
        const range = `${done}-${done + chunk.length - 1}`;
        const headers = { "content-type": "application/octet-stream", "content-range": range };
        location = await this.location(await this.request("PATCH", location, { headers, body: chunk }, subject), subject);
      }
      done += chunk.length;
      options.onBytes?.(done);
    }
    if (done !== desc.size) throw new ContainerError("internal", `blob ${desc.digest} has ${done} bytes, its descriptor says ${desc.size}`);
    const put = new URL(location);
    put.searchParams.set("digest", desc.digest);
    const res = await this.request("PUT", put, { headers: { "content-type": "application/octet-stream" }, body: last }, subject);
    await res.body?.cancel();
  }

  /** Puts a manifest or index under a tag or its digest; returns the digest the registry says it stored. */
  async putManifest(reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const subject = `manifest ${this.name}${reference.startsWith("sha256:") ? "@" : ":"}${reference}`;
    const res = await this.request("PUT", `manifests/${reference}`, { headers: { "content-type": mediaType }, body: bytes }, subject);
    await res.body?.cancel();
    return verifyManifest(bytes, { header: res.headers.get("docker-content-digest") }, subject);
  }

  /** Where an upload continues: the Location of the registry's answer, resolved against the request. */
  private async location(res: Response, subject: string): Promise<URL> {
    await res.body?.cancel();
    const location = res.headers.get("location");
    if (!location) throw new ContainerError("unavailable", `registry ${this.ref.domain} gave no location for the ${subject}`);
    return new URL(location, res.url || this.base);
  }

  /**
   * `method` on `<base>/<rel>` (or an absolute URL), answering auth challenges
   * and following redirects; an answer that is not 2xx (nor in `allow`) throws.
   */
  private async request(
    method: string,
    target: string | URL,
    o: { headers: Record<string, string>; body?: Buffer; allow?: number[] },
    subject: string,
  ): Promise<Response> {
    const url = typeof target === "string" ? new URL(`${this.base}/${target}`) : target;
    const init = { method, headers: o.headers, ...(o.body ? { body: o.body } : {}) };
    const sent = this.auth.header();
    let res = await this.follow(url, init, await sent);
    if (res.status === 401) {
      const retry = await this.auth.challenged(sent, res.headers.get("www-authenticate"));
      if (retry !== undefined) {
        await res.body?.cancel();
        res = await this.follow(url, init, retry);
      }
    }
    if (res.ok || o.allow?.includes(res.status)) return res;
    throw await this.failure(res, subject);
  }

  /** Follows redirects by hand so that Authorization never leaves the registry's origin. */
  private async follow(url: URL, init: Init, authorization: string | undefined): Promise<Response> {
    let target = url;
    for (let hop = 0; ; hop++) {
      const sameOrigin = target.origin === url.origin;
      const headers = { ...init.headers, ...(authorization && sameOrigin ? { authorization } : {}) };
      const res = await this.send(target, { ...init, headers });
      const location = res.headers.get("location");
      if (res.status < 300 || res.status >= 400 || location === null) return res;
      await res.body?.cancel();
      if (hop === MAX_REDIRECTS) throw new ContainerError("unavailable", `registry ${this.ref.domain} redirected more than ${MAX_REDIRECTS} times`);
      target = new URL(location, target);
    }
  }

  /** One HTTP request, redirects not followed; network failures become `unavailable`, an abort `cancelled`. */
  private async send(url: URL, init: Init): Promise<Response> {
    try {
      const { body, ...rest } = init;
      return await fetch(url, {
        ...rest,
        // A view, not a copy: Buffer's type is wider than fetch's BodyInit.
        ...(body ? { body: new Uint8Array(body.buffer as ArrayBuffer, body.byteOffset, body.byteLength) } : {}),
        redirect: "manual",
        ...(this.options.signal ? { signal: this.options.signal } : {}),
      });
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
    if (this.options.signal?.aborted) return new ContainerError("cancelled", `${this.options.push ? "push" : "pull"} cancelled`, { cause: err });
    const cause = (err as { cause?: { code?: string; message?: string; reason?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    // Certificate failures (UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_TLS_CERT_ALTNAME_INVALID, …) and TLS spoken to plain http (ERR_SSL_WRONG_VERSION_NUMBER).
    const tls = /CERT|SSL|TLS|VERIFY|SIGNATURE|EPROTO/i.test(why);
    if (tls) {
      // OpenSSL's own message is several lines with file names; its reason is one phrase.
      const reason = (cause?.reason ?? cause?.message ?? why).split("\n")[0];
      return new ContainerError("unavailable", `${message}: TLS failed: ${reason}`, {
        cause: err,
        hint: `trust its CA (NODE_EXTRA_CA_CERTS=ca.pem in the environment of \`container system start\`), or if ${this.ref.domain} serves plain http, pass --insecure-registry ${this.ref.domain}`,
      });
    }
    const failure = new ContainerError("unavailable", `${message}: ${why}`, { cause: err });
    // A registry that is down or unknown stays so for the seconds retries take; a dropped connection may not.
    return UNREACHABLE.includes(cause?.code ?? "") ? failure : transient(failure);
  }

  private async failure(res: Response, subject: string): Promise<ContainerError> {
    const { code, text } = await registryMessage(res);
    const registry = this.ref.domain;
    if (res.status === 404) {
      return code === "NAME_UNKNOWN"
        ? new ContainerError("notFound", `repository ${this.name} not found`)
        : new ContainerError("notFound", `${subject} not found (${text})`);
    }
    if ((res.status === 401 || res.status === 403) && this.options.push) {
      return new ContainerError("invalidArgument", `push access denied for ${this.name}: ${text}`, {
        hint: this.options.credentials ? "the credentials do not allow pushing to this repository" : `log in first: container registry login ${registry}`,
      });
    }
    if (res.status === 401 || res.status === 403) {
      // As Docker says it: registries answer so for missing repositories too.
      return this.options.credentials
        ? new ContainerError("notFound", `pull access denied for ${this.name}: the repository does not exist or the credentials do not allow it`)
        : new ContainerError("notFound", `pull access denied for ${this.name}: the repository does not exist or needs credentials`, {
            hint: `log in first: container registry login ${registry}`,
          });
    }
    if (res.status === 429) return new ContainerError("resourceExhausted", `registry ${registry} is rate-limiting pulls: ${text}`);
    if (res.status >= 500) return transient(new ContainerError("unavailable", `registry ${registry} failed: ${text}`));
    return new ContainerError("invalidArgument", `registry ${registry} refused ${subject}: ${text}`);
  }
}
