// Registry authentication (the Docker token protocol): a request goes out
// with whatever Authorization this repository has earned so far; a 401
// carries `WWW-Authenticate` challenges, answered with Basic credentials or
// with a Bearer token fetched from the challenge's realm for the pull scope.
// The request is then retried once. Tokens expire; the next 401 fetches a
// new one the same way.
import { ContainerError } from "../../../lib/errors/index.js";

export interface Credentials {
  username: string;
  password: string;
}

export interface Challenge {
  /** Lowercase: "bearer", "basic". */
  scheme: string;
  /** Parameter names lowercase, values unquoted. */
  params: Record<string, string>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/** Parses a WWW-Authenticate header (RFC 7235): one or more challenges with their auth-params. */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const skip = (chars: RegExp): void => {
    while (i < header.length && chars.test(header[i]!)) i++;
  };
  const token = (): string => {
    const m = TOKEN.exec(header.slice(i));
    i += m ? m[0].length : 0;
    return m ? m[0] : "";
  };
  for (;;) {
    skip(/[\s,]/);
    const scheme = token();
    if (scheme === "") break;
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    for (;;) {
      skip(/[\s,]/);
      const start = i;
      const name = token();
      skip(/\s/);
      // Not `name=`: the next challenge's scheme (or the end).
      if (name === "" || header[i] !== "=") {
        i = start;
        break;
      }
      i++;
      skip(/\s/);
      let value = "";
      if (header[i] === '"') {
        for (i++; i < header.length && header[i] !== '"'; i++) {
          if (header[i] === "\\") i++;
          value += header[i] ?? "";
        }
        i++;
      } else {
        value = token();
      }
      challenge.params[name.toLowerCase()] = value;
    }
  }
  return challenges;
}

export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

export interface AuthorizerOptions {
  /** The registry, for messages. */
  host: string;
  /** What the token is asked for, e.g. `repository:library/alpine:pull`; "" asks for none (a login check). */
  scope: string;
  credentials?: Credentials;
  /** GETs a token endpoint URL the way the client GETs anything (redirects, abort), with `authorization` if given. */
  get(url: URL, authorization?: string): Promise<Response>;
}

/**
 * The Authorization header for one repository on one registry. Concurrent
 * requests that all hit a 401 share one token fetch: a request answers a
 * challenge only if nobody has replaced the header it was sent with.
 */
export class Authorizer {
  private current: Promise<string | undefined> = Promise.resolve(undefined);

  constructor(private readonly options: AuthorizerOptions) {}

  /** What to send now; resolves to undefined while anonymous. */
  header(): Promise<string | undefined> {
    return this.current;
  }

  /**
   * After a 401 to a request sent with `sent` (the promise header() gave):
   * the header to retry with, or undefined when there is nothing new to try.
   */
  async challenged(sent: Promise<string | undefined>, wwwAuthenticate: string | null): Promise<string | undefined> {
    if (sent === this.current) {
      const next = this.answer(parseChallenges(wwwAuthenticate ?? ""));
      this.current = next.catch(() => undefined);
      const header = await next;
      return header === (await sent) ? undefined : header;
    }
    return this.current;
  }

  private async answer(challenges: Challenge[]): Promise<string | undefined> {
    const { credentials } = this.options;
    const bearer = challenges.find((c) => c.scheme === "bearer" && c.params.realm);
    if (bearer) return `Bearer ${await this.token(bearer)}`;
    if (credentials && challenges.some((c) => c.scheme === "basic")) return basicAuthorization(credentials);
    return undefined;
  }

  private async token(challenge: Challenge): Promise<string> {
    const { host, scope, credentials } = this.options;
    let url: URL;
    try {
      url = new URL(challenge.params.realm!);
    } catch {
      throw new ContainerError("invalidArgument", `registry ${host} sent a bad token realm "${challenge.params.realm}"`);
    }
    if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
    if (scope) url.searchParams.set("scope", scope);
    const res = await this.options.get(url, credentials ? basicAuthorization(credentials) : undefined);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw credentials
        ? new ContainerError("invalidArgument", `registry ${host} rejected the credentials of ${credentials.username}`)
        : new ContainerError("invalidArgument", `registry ${host} refused an anonymous token`, { hint: `log in first: container registry login ${host}` });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new ContainerError("unavailable", `token server of registry ${host} answered ${res.status}`);
    }
    const body = (await res.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown };
    const token = body.token ?? body.access_token;
    if (typeof token !== "string" || token === "") {
      throw new ContainerError("invalidArgument", `token server of registry ${host} sent no token`);
    }
    return token;
  }
}
