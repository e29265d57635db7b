// A real registry for end-to-end tests: Debian's docker-registry (the CNCF
// distribution registry) on a free loopback port, storing into a temp dir,
// optionally behind htpasswd (bcrypt) Basic auth. Images go in with skopeo.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { waitFor } from "./env.js";

const run = promisify(execFile);
const REGISTRY = "/usr/bin/docker-registry";

export interface Registry {
  /** `127.0.0.1:<port>`. */
  host: string;
  /** Copies an image (e.g. `oci-archive:/path.tar`) to `<host>/<name>`. */
  push(source: string, name: string): Promise<void>;
  /** Stops the registry and removes its storage. */
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startRegistry(options: { user?: string; password?: string } = {}): Promise<Registry> {
  for (const tool of [REGISTRY, "/usr/bin/skopeo", ...(options.user ? ["/usr/bin/htpasswd"] : [])]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: run the README set-up (npm run setup) first`);
  }
  const dir = await mkdtemp("/tmp/registry-");
  const host = `127.0.0.1:${await freePort()}`;
  let auth = "";
  if (options.user && options.password) {
    const { stdout } = await run("htpasswd", ["-nbB", options.user, options.password]);
    await writeFile(join(dir, "htpasswd"), stdout);
    auth = `auth:\n  htpasswd:\n    realm: test\n    path: ${join(dir, "htpasswd")}\n`;
  }
  const config = `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "data")}\nhttp:\n  addr: ${host}\n${auth}`;
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
      const res = await fetch(`http://${host}/v2/`).catch(() => undefined);
      return res !== undefined && (res.status === 200 || res.status === 401);
    }, 10_000, "docker-registry to listen");
  } catch (err) {
    await close();
    throw err;
  }
  const creds = options.user ? ["--dest-creds", `${options.user}:${options.password}`] : [];
  return {
    host,
    push: async (source, name) => {
      await run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", ...creds, source, `docker://${host}/${name}`]);
    },
    close,
  };
}
