#!/usr/bin/env zx
// Generates code from the project's .proto files.
//
//   Go  (protoc-gen-go + protoc-gen-go-grpc) for the host-guest contract,
//       beside the proto in vminitd/api/v1/ (package agentv1);
//   TS  (ts-proto, grpc-js services) for every proto of every component, into
//       a gen/ folder beside the component's api/ tree:
//         vminitd/api/v1/*.proto          -> helpers/agent/gen/
//         apiserver/api/v1/*.proto        -> apiserver/api/gen/
//         helpers/runtime/api/v1/*.proto  -> helpers/runtime/api/gen/
//
// Usage: zx scripts/gen-proto.mjs [--check]
//   --check  generates into a temporary directory and compares with the
//            checked-in files; exits 1 naming every stale, missing or extra
//            file, and writes nothing into the repository.
//
// The Go plugins are pinned and installed into .tools/bin (gitignored) when
// missing or at another version; ts-proto comes from node_modules.
import { $, fs, path, os, argv } from "zx";
import { fileURLToPath } from "node:url";

$.verbose = false;
$.quiet = true;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const TOOLS_BIN = path.join(ROOT, ".tools", "bin");

// Pinned plugin versions; bump together with vminitd/go.mod's grpc/protobuf.
const PROTOC_GEN_GO = { pkg: "google.golang.org/protobuf/cmd/protoc-gen-go", version: "v1.36.12" };
const PROTOC_GEN_GO_GRPC = { pkg: "google.golang.org/grpc/cmd/protoc-gen-go-grpc", version: "v1.6.2" };

// ts-proto options. forceLong=bigint because int64/uint64 fields carry
// nanoseconds (exited_at_ns since the epoch exceeds 2^53; with
// forceLong=number ts-proto throws on decode).
const TS_PROTO_OPTS = [
  "esModuleInterop=true",
  "importSuffix=.js",
  "env=node",
  "useOptionals=none",
  "forceLong=bigint",
  "useExactTypes=false",
];

// Each component: where its protos live (the include root), where its TS
// goes, and the form of its services. `go` marks the protos that also get Go
// code, written beside them. The apiserver's services are plain definitions
// (no @grpc/grpc-js import): the CLI talks to it over node:http2
// (lib/grpc/http2-client.ts) and must not pay grpc-js's load time on every
// command; the apiserver adapts them for its grpc-js server.
const COMPONENTS = [
  { protoDir: "vminitd/api/v1", tsOut: "helpers/agent/gen", services: "grpc-js", go: true },
  { protoDir: "apiserver/api/v1", tsOut: "apiserver/api/gen", services: "generic-definitions", go: false },
  { protoDir: "helpers/runtime/api/v1", tsOut: "helpers/runtime/api/gen", services: "grpc-js", go: false },
];

const check = Boolean(argv.check);

function findGo() {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "go");
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  if (fs.existsSync("/usr/local/go/bin/go")) return "/usr/local/go/bin/go";
  throw new Error("go not found on PATH nor at /usr/local/go/bin/go");
}

async function pluginVersion(bin) {
  if (!(await fs.pathExists(bin))) return "";
  const out = await $`${bin} --version`.quiet().nothrow();
  return out.exitCode === 0 ? out.stdout.trim() : "";
}

// protoc-gen-go prints "protoc-gen-go v1.36.12"; protoc-gen-go-grpc prints
// "protoc-gen-go-grpc 1.6.2".
async function ensurePlugin(name, { pkg, version }) {
  const bin = path.join(TOOLS_BIN, name);
  const have = await pluginVersion(bin);
  if (have.endsWith(version) || have.endsWith(version.replace(/^v/, ""))) return bin;
  await fs.mkdirp(TOOLS_BIN);
  process.stderr.write(`gen-proto: installing ${pkg}@${version} into .tools/bin\n`);
  await $({ env: { ...process.env, GOBIN: TOOLS_BIN, GOFLAGS: "-mod=mod" } })`${findGo()} install ${pkg}@${version}`;
  return bin;
}

async function listProtos(dir) {
  const abs = path.join(ROOT, dir);
  if (!(await fs.pathExists(abs))) return [];
  const out = [];
  const walk = async (d) => {
    for (const entry of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.name.endsWith(".proto")) out.push(path.relative(abs, p));
    }
  };
  await walk(abs);
  return out.sort();
}

async function listFiles(dir) {
  if (!(await fs.pathExists(dir))) return [];
  const out = [];
  const walk = async (d) => {
    for (const entry of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

// Generates everything into `outRoot`, mirroring repo-relative paths. Returns
// the list of generated "targets": { kind: "dir"|"file", rel } where a dir
// target is owned wholly by the generator (its extra files are stale) and a
// file target is a single generated file living among hand-written ones.
async function generate(outRoot) {
  const tsPlugin = path.join(ROOT, "node_modules", ".bin", "protoc-gen-ts_proto");
  if (!(await fs.pathExists(tsPlugin))) throw new Error("ts-proto missing: run npm install");
  const targets = [];
  let goPlugins;
  for (const c of COMPONENTS) {
    const protos = await listProtos(c.protoDir);
    if (protos.length === 0) continue;
    const include = path.join(ROOT, c.protoDir);

    const tsOut = path.join(outRoot, c.tsOut);
    await fs.mkdirp(tsOut);
    await $({ cwd: include })`protoc -I ${include} --plugin=protoc-gen-ts_proto=${tsPlugin} --ts_proto_out=${tsOut} --ts_proto_opt=${[`outputServices=${c.services}`, ...TS_PROTO_OPTS].join(",")} ${protos}`;
    targets.push({ kind: "dir", rel: c.tsOut });

    if (c.go) {
      goPlugins ??= {
        go: await ensurePlugin("protoc-gen-go", PROTOC_GEN_GO),
        grpc: await ensurePlugin("protoc-gen-go-grpc", PROTOC_GEN_GO_GRPC),
      };
      const goOut = path.join(outRoot, c.protoDir);
      await fs.mkdirp(goOut);
      await $({ cwd: include })`protoc -I ${include} --plugin=protoc-gen-go=${goPlugins.go} --plugin=protoc-gen-go-grpc=${goPlugins.grpc} --go_out=${goOut} --go_opt=paths=source_relative --go-grpc_out=${goOut} --go-grpc_opt=paths=source_relative ${protos}`;
      for (const f of await listFiles(goOut)) {
        if (f.endsWith(".pb.go")) targets.push({ kind: "file", rel: path.join(c.protoDir, f) });
      }
    }
  }
  return targets;
}

// The generated .pb.go files a component has in the repo now (to spot ones
// whose proto was removed).
async function existingGoFiles() {
  const out = [];
  for (const c of COMPONENTS) {
    if (!c.go) continue;
    for (const f of await listFiles(path.join(ROOT, c.protoDir))) {
      if (f.endsWith(".pb.go")) out.push(path.join(c.protoDir, f));
    }
  }
  return out;
}

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "gen-proto-"));
try {
  const targets = await generate(tmp);
  const wantGo = new Set(targets.filter((t) => t.kind === "file").map((t) => t.rel));
  const dirs = targets.filter((t) => t.kind === "dir").map((t) => t.rel);
  // gen/ folders of components whose protos are gone are stale too.
  for (const c of COMPONENTS) {
    if (!dirs.includes(c.tsOut) && (await fs.pathExists(path.join(ROOT, c.tsOut)))) dirs.push(c.tsOut);
  }

  if (check) {
    const stale = [];
    const compare = async (rel) => {
      const fresh = path.join(tmp, rel);
      const cur = path.join(ROOT, rel);
      const freshExists = await fs.pathExists(fresh);
      const curExists = await fs.pathExists(cur);
      if (!curExists) stale.push(`${rel} (missing)`);
      else if (!freshExists) stale.push(`${rel} (no longer generated)`);
      else if (!(await fs.readFile(fresh)).equals(await fs.readFile(cur))) stale.push(`${rel} (out of date)`);
    };
    for (const rel of wantGo) await compare(rel);
    for (const rel of await existingGoFiles()) if (!wantGo.has(rel)) await compare(rel);
    for (const dir of dirs) {
      const files = new Set([...(await listFiles(path.join(tmp, dir))), ...(await listFiles(path.join(ROOT, dir)))]);
      for (const f of [...files].sort()) await compare(path.join(dir, f));
    }
    if (stale.length > 0) {
      process.stderr.write(`gen-proto: generated code is stale; run \`npm run gen:proto\`:\n`);
      for (const s of stale) process.stderr.write(`  ${s}\n`);
      process.exit(1);
    }
    process.stderr.write("gen-proto: generated code is up to date\n");
  } else {
    for (const rel of await existingGoFiles()) if (!wantGo.has(rel)) await fs.remove(path.join(ROOT, rel));
    for (const rel of wantGo) await fs.copy(path.join(tmp, rel), path.join(ROOT, rel));
    for (const dir of dirs) {
      // A gen/ folder holds generated files only: replace it wholesale.
      await fs.remove(path.join(ROOT, dir));
      if (await fs.pathExists(path.join(tmp, dir))) await fs.copy(path.join(tmp, dir), path.join(ROOT, dir));
    }
    const n = wantGo.size + (await Promise.all(dirs.map((d) => listFiles(path.join(ROOT, d))))).flat().length;
    process.stderr.write(`gen-proto: wrote ${n} files\n`);
  }
} finally {
  await fs.remove(tmp);
}
