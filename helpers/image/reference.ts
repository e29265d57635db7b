// Docker-style image references: `[domain/]path[:tag][@digest]`.
//
// Images are recorded under their *familiar* form, the one `docker images`
// shows: `demo:latest` rather than `docker.io/library/demo:latest`, and
// `ghcr.io/org/app:1` stays as it is. Every spelling of one name parses to the
// same familiar string, so `demo`, `demo:latest` and
// `docker.io/library/demo:latest` all find the same image.
import { ContainerError } from "../../lib/errors/index.js";

export const DEFAULT_DOMAIN = "docker.io";
const LEGACY_DOMAIN = "index.docker.io";
const OFFICIAL_PREFIX = "library/";
export const DEFAULT_TAG = "latest";

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const ANY_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const HEX64 = /^[a-f0-9]{64}$/;
const NAME_MAX = 255;

export interface ImageReference {
  /** Registry host, `docker.io` when none is given. */
  domain: string;
  /** Repository path; single-component docker.io names get `library/`. */
  path: string;
  /** `latest` when neither a tag nor a digest is given. */
  tag?: string;
  /** `sha256:<hex>`. */
  digest?: string;
}

function invalid(input: string, why: string, hint?: string): ContainerError {
  return new ContainerError("invalidArgument", `invalid image reference "${input}": ${why}`, hint ? { hint } : {});
}

export function isDigest(value: string): boolean {
  return DIGEST.test(value);
}

/** Parses and normalises a reference; invalidArgument when it is not one. */
export function parseReference(input: string): ImageReference {
  if (input === "") throw invalid(input, "empty");
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      throw ANY_DIGEST.test(digest) && !digest.startsWith("sha256:")
        ? new ContainerError("unsupported", `unsupported digest "${digest}" in "${input}": only sha256 is supported`)
        : invalid(input, `bad digest "${digest}"`);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(input, `bad tag "${tag}"`);
  }
  if (rest === "") throw invalid(input, "missing repository name");

  // Like docker: the first component is a registry host when it looks like
  // one (has a dot or a port, is localhost, or has capitals).
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase()) {
      if (!DOMAIN.test(first)) throw invalid(input, `bad registry host "${first}"`);
      domain = first === LEGACY_DOMAIN ? DEFAULT_DOMAIN : first;
      path = rest.slice(slash + 1);
    }
  }
  for (const component of path.split("/")) {
    if (!COMPONENT.test(component)) {
      const hint = component !== component.toLowerCase() ? "repository names must be lowercase" : undefined;
      throw invalid(input, `bad name component "${component}"`, hint);
    }
  }
  if (HEX64.test(path)) throw invalid(input, "a 64-character hex string is a digest, not a name");
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = OFFICIAL_PREFIX + path;
  if (domain.length + 1 + path.length > NAME_MAX) throw invalid(input, `name longer than ${NAME_MAX} characters`);
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return { domain, path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The repository name in familiar form: `demo`, `user/app`, `ghcr.io/org/app`. */
export function familiarName(ref: ImageReference): string {
  if (ref.domain !== DEFAULT_DOMAIN) return `${ref.domain}/${ref.path}`;
  const rest = ref.path.slice(OFFICIAL_PREFIX.length);
  return ref.path.startsWith(OFFICIAL_PREFIX) && !rest.includes("/") ? rest : ref.path;
}

/** `demo:latest`, `ghcr.io/org/app:1@sha256:…`. */
export function familiarString(ref: ImageReference): string {
  return familiarName(ref) + (ref.tag !== undefined ? `:${ref.tag}` : "") + (ref.digest !== undefined ? `@${ref.digest}` : "");
}

/** `docker.io/library/demo:latest`. */
export function fullString(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}` + (ref.tag !== undefined ? `:${ref.tag}` : "") + (ref.digest !== undefined ? `@${ref.digest}` : "");
}

/** parseReference + familiarString. */
export function normalizeReference(input: string): string {
  return familiarString(parseReference(input));
}

/**
 * When `input` names an image by digest rather than by name, the lowercase
 * hex (or hex prefix) to match: `sha256:<hex…>` always, a bare 64-hex string
 * always, a shorter bare hex string (≥ 4 characters) only as a fallback when
 * no name matches (`abcd` is also a valid name). Undefined otherwise.
 */
export function digestQuery(input: string): { hex: string; fallback: boolean } | undefined {
  const prefixed = /^sha256:([a-f0-9]{1,64})$/.exec(input);
  if (prefixed?.[1] !== undefined) return { hex: prefixed[1], fallback: false };
  if (HEX64.test(input)) return { hex: input, fallback: false };
  if (/^[a-f0-9]{4,63}$/.test(input)) return { hex: input, fallback: true };
  return undefined;
}
