import { describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { Authorizer, basicAuthorization, parseChallenges } from "./auth.js";

describe("parseChallenges", () => {
  it("reads a Docker Hub style Bearer challenge", () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual([
      { scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/alpine:pull" } },
    ]);
  });

  it("keeps commas and escapes inside quoted values, and lowercases names", () => {
    expect(parseChallenges('Bearer Realm="https://x/token", scope="repository:a:pull,push", error="say \\"hi\\""')).toEqual([
      { scheme: "bearer", params: { realm: "https://x/token", scope: "repository:a:pull,push", error: 'say "hi"' } },
    ]);
  });

  it("splits several challenges, with unquoted values", () => {
    expect(parseChallenges('Basic realm="Registry Realm", Bearer realm="https://t/token", service = reg.io')).toEqual([
      { scheme: "basic", params: { realm: "Registry Realm" } },
      { scheme: "bearer", params: { realm: "https://t/token", service: "reg.io" } },
    ]);
  });

  it("takes a scheme without parameters, and nothing from an empty header", () => {
    expect(parseChallenges("Negotiate")).toEqual([{ scheme: "negotiate", params: {} }]);
    expect(parseChallenges("")).toEqual([]);
  });
});

describe("Authorizer", () => {
  const creds = { username: "u", password: "p:w" };

  function tokenServer(token = "tok"): { calls: { url: URL; authorization?: string }[]; get: (url: URL, authorization?: string) => Promise<Response> } {
    const calls: { url: URL; authorization?: string }[] = [];
    return {
      calls,
      get: async (url, authorization) => {
        calls.push({ url, authorization });
        return Response.json({ token: `${token}${calls.length}` });
      },
    };
  }

  it("fetches a token for the scope, with Basic credentials, and shares it", async () => {
    const server = tokenServer();
    const auth = new Authorizer({ host: "r.example", scope: "repository:a/b:pull", credentials: creds, get: server.get });
    const sent = auth.header();
    expect(await sent).toBeUndefined();
    const challenge = 'Bearer realm="https://r.example/token",service="r.example"';
    // Two requests that went out anonymously both hit a 401: one token fetch.
    const [a, b] = await Promise.all([auth.challenged(sent, challenge), auth.challenged(sent, challenge)]);
    expect([a, b]).toEqual(["Bearer tok1", "Bearer tok1"]);
    expect(server.calls).toHaveLength(1);
    expect(server.calls[0]!.url.searchParams.get("scope")).toBe("repository:a/b:pull");
    expect(server.calls[0]!.url.searchParams.get("service")).toBe("r.example");
    expect(server.calls[0]!.authorization).toBe(basicAuthorization(creds));
    expect(await auth.header()).toBe("Bearer tok1");
    // An expired token: the next 401 fetches a new one.
    expect(await auth.challenged(auth.header(), challenge)).toBe("Bearer tok2");
  });

  it("answers Basic challenges with the credentials, and has nothing to offer without them", async () => {
    const withCreds = new Authorizer({ host: "r", scope: "s", credentials: creds, get: tokenServer().get });
    expect(await withCreds.challenged(withCreds.header(), 'Basic realm="x"')).toBe(`Basic ${Buffer.from("u:p:w").toString("base64")}`);
    // Rejected again with the same header: nothing new to try.
    expect(await withCreds.challenged(withCreds.header(), 'Basic realm="x"')).toBeUndefined();
    const anonymous = new Authorizer({ host: "r", scope: "s", get: tokenServer().get });
    expect(await anonymous.challenged(anonymous.header(), 'Basic realm="x"')).toBeUndefined();
  });

  it("says the credentials were rejected when the token server refuses them", async () => {
    const auth = new Authorizer({ host: "r.example", scope: "s", credentials: creds, get: async () => new Response("", { status: 401 }) });
    const err = await auth.challenged(auth.header(), 'Bearer realm="https://r.example/token"').catch((e: unknown) => e);
    expect(isContainerError(err, "invalidArgument")).toBe(true);
    expect((err as Error).message).toBe("registry r.example rejected the credentials of u");
  });
});
