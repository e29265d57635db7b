// A real registry for end-to-end tests: Debian's docker-registry (the CNCF
// distribution registry) on a free loopback port (or another local address),
// storing into a temp dir, optionally behind htpasswd (bcrypt) Basic auth and
// TLS with a certificate of a CA made here by openssl. Images go in with skopeo.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { waitFor } from "./env.js";

const run = promisify(execFile);
const REGISTRY = "/usr/bin/docker-registry";

export interface Registry {
  /** `<address>:<port>`, `127.0.0.1:<port>` by default. */
  host: string;
  /** With `tls`: the PEM file of the CA that signed the registry's certificate. */
  ca?: string;
  /** Copies an image (e.g. `oci-archive:/path.tar`) to `<host>/<name>`; `args` go to skopeo copy. */
  push(source: string, name: string, args?: string[]): Promise<void>;
  /** Stops the registry and removes its storage. */
  close(): Promise<void>;
}

async function freePort(address: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A CA and a certificate it signed for `address` (an IP), made by openssl in `dir`. */
async function makeCertificate(dir: string, address: string): Promise<{ ca: string; cert: string; key: string }> {
  const p = (name: string): string => join(dir, name);
  await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test registry CA", "-keyout", p("ca.key"), "-out", p("ca.pem")]);
  await run("openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${address}`, "-keyout", p("server.key"), "-out", p("server.csr")]);
  await writeFile(p("ext.cnf"), `subjectAltName=IP:${address}\nextendedKeyUsage=serverAuth\n`);
  await run("openssl", ["x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", p("ext.cnf"), "-out", p("server.pem")]);
  return { ca: p("ca.pem"), cert: p("server.pem"), key: p("server.key") };
}

export interface RegistryOptions {
  user?: string;
  password?: string;
  /** The local address to listen on; 127.0.0.1 by default. */
  address?: string;
  /** Serve https, with a certificate for `address` from a CA of the registry's own (Registry.ca). */
  tls?: boolean;
}

export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  for (const tool of [REGISTRY, "/usr/bin/skopeo", ...(options.user ? ["/usr/bin/htpasswd"] : []), ...(options.tls ? ["/usr/bin/openssl"] : [])]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: run the README set-up (npm run setup) first`);
  }
  const dir = await mkdtemp("/tmp/registry-");
  const address = options.address ?? "127.0.0.1";
  const host = `${address}:${await freePort(address)}`;
  let auth = "";
  if (options.user && options.password) {
    const { stdout } = await run("htpasswd", ["-nbB", options.user, options.password]);
    await writeFile(join(dir, "htpasswd"), stdout);
    auth = `auth:\n  htpasswd:\n    realm: test\n    path: ${join(dir, "htpasswd")}\n`;
  }
  const certs = options.tls ? await makeCertificate(dir, address) : undefined;
  const tls = certs ? `  tls:\n    certificate: ${certs.cert}\n    key: ${certs.key}\n` : "";
  const config = `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "data")}\nhttp:\n  addr: ${host}\n${tls}${auth}`;
  await writeFile(join(dir, "config.yml"), config);
  const child: ChildProcess = spawn(REGISTRY, ["serve", join(dir, "config.yml")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
      // Any answer means it listens (https is not verified here: Node knows nothing of its CA).
      const up = await new Promise<boolean>((resolve) => {
        const socket = connect({ host: address, port: Number(host.slice(address.length + 1)) }, () => {
          socket.end();
          resolve(true);
        });
        socket.on("error", () => resolve(false));
      });
      return up;
    }, 10_000, "docker-registry to listen");
  } catch (err) {
    await close();
    throw err;
  }
  const creds = options.user ? ["--dest-creds", `${options.user}:${options.password}`] : [];
  return {
    host,
    ...(certs ? { ca: certs.ca } : {}),
    push: async (source, name, args = []) => {
      await run("skopeo", ["--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false", ...creds, ...args, source, `docker://${host}/${name}`]);
    },
    close,
  };
}
