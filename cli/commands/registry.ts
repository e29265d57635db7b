// `container registry login|logout`: credentials for a registry, checked
// against it (GET /v2/ with them, as `docker login` does) and kept in our own
// file (helpers/image/registry/credentials.ts), which pull and push read
// before the docker config. The CLI talks to the registry itself: no
// apiserver is needed to log in.
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import type { Command } from "commander";
import { ContainerError } from "../../lib/errors/index.js";
import { RegistryClient } from "../../helpers/image/registry/client.js";
import { removeLogin, saveLogin } from "../../helpers/image/registry/credentials.js";
import { DEFAULT_DOMAIN } from "../../helpers/image/reference.js";

/** `docker.io`, `index.docker.io`, `https://index.docker.io/v1/`, `http://host:5000/` → the registry domain. */
export function registryDomain(input: string): string {
  const host = input.trim().replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
  if (host === "" || !/^[A-Za-z0-9.[\]:-]+$/.test(host)) throw new ContainerError("invalidArgument", `invalid registry "${input}"`, { hint: "give HOST[:PORT]" });
  return ["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"].includes(host.toLowerCase()) ? DEFAULT_DOMAIN : host.toLowerCase();
}

async function readStdin(): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin) text += (chunk as Buffer).toString();
  return text;
}

/** Asks on the terminal; with `secret`, nothing typed is echoed. */
async function prompt(question: string, secret: boolean): Promise<string> {
  let muted = false;
  const output = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  try {
    const answer = new Promise<string>((resolve) => rl.question(question, resolve));
    muted = secret;
    return await answer;
  } finally {
    rl.close();
    if (secret) process.stderr.write("\n");
  }
}

interface LoginFlags {
  username?: string;
  passwordStdin?: boolean;
  insecure?: boolean;
}

async function login(registry: string, flags: LoginFlags): Promise<void> {
  const domain = registryDomain(registry);
  const interactive = process.stdin.isTTY === true;
  if (!flags.passwordStdin && !interactive) {
    throw new ContainerError("invalidArgument", "no terminal to ask for the password on", { hint: "pipe it in with --password-stdin" });
  }
  const username = flags.username ?? (interactive && !flags.passwordStdin ? (await prompt("Username: ", false)).trim() : "");
  if (username === "") throw new ContainerError("invalidArgument", "no username given", { hint: "use -u USER" });
  // As docker does: one trailing newline (echo's) is not part of the password.
  const password = flags.passwordStdin ? (await readStdin()).replace(/\r?\n$/, "") : await prompt("Password: ", true);
  if (password === "") throw new ContainerError("invalidArgument", "no password given");
  const credentials = { username, password };
  await RegistryClient.forRegistry(domain, { credentials, ...(flags.insecure ? { insecure: [domain] } : {}) }).checkLogin();
  const file = await saveLogin(domain, credentials);
  process.stdout.write(`Login Succeeded (credentials for ${domain} saved in ${file})\n`);
}

export function registerRegistry(program: Command): void {
  const registry = program.command("registry").description("log in to and out of image registries");
  registry
    .command("login")
    .description("check credentials against a registry and keep them for pull and push")
    .argument("<registry>", "HOST[:PORT], e.g. ghcr.io, localhost:5000, docker.io")
    .option("-u, --username <user>", "the user name (asked on the terminal when missing)")
    .option("--password-stdin", "read the password (or token) from stdin")
    .option("--insecure", "speak plain http to the registry (loopback ones always are)")
    .action(async (host: string, flags: LoginFlags) => {
      await login(host, flags);
    });
  registry
    .command("logout")
    .description("forget the credentials kept for a registry")
    .argument("<registry>", "HOST[:PORT]")
    .action(async (host: string) => {
      const domain = registryDomain(host);
      const removed = await removeLogin(domain);
      process.stdout.write(removed ? `Removed login credentials for ${domain}\n` : `Not logged in to ${domain}\n`);
    });
}
