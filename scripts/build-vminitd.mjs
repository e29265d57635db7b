#!/usr/bin/env zx
// Builds vminitd, the guest's PID 1, as static Linux binaries:
//   build/vminitd/amd64/vminitd, build/vminitd/arm64/vminitd
//
// Usage: zx scripts/build-vminitd.mjs [--arch amd64|arm64] [--force]
//
// Each binary is cached in ${XDG_CACHE_HOME:-$HOME/.cache}/container-build/
// vminitd-<arch>-<key>/, where key hashes every non-test .go file, go.mod,
// go.sum, the Go version and the build recipe below. A cache hit is a copy.
// The version baked in (-X main.version) is `git describe` (or the source
// key when there is no commit yet); it is not part of the key, so a cached
// binary keeps the version of the build that made it.
import { $, fs, path, os, argv } from "zx";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";

$.verbose = false;
$.quiet = true;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SRC = path.join(ROOT, "vminitd");
const ARCHES = ["amd64", "arm64"];
// Bump when the flags below change, to invalidate cached binaries.
const RECIPE = "v1 CGO_ENABLED=0 -trimpath -buildvcs=false -ldflags=-s -w";

function findGo() {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && fs.existsSync(path.join(dir, "go"))) return path.join(dir, "go");
  }
  if (fs.existsSync("/usr/local/go/bin/go")) return "/usr/local/go/bin/go";
  throw new Error("go not found on PATH nor at /usr/local/go/bin/go");
}

async function goFiles(dir, rel = "") {
  const out = [];
  for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...(await goFiles(dir, r)));
    else if (e.name.endsWith(".go") && !e.name.endsWith("_test.go")) out.push(r);
  }
  return out.sort();
}

async function sourceKey(goVersion) {
  const h = createHash("sha256");
  h.update(`${RECIPE}\0${goVersion}\0`);
  for (const f of [...(await goFiles(SRC)), "go.mod", "go.sum"]) {
    h.update(f + "\0");
    h.update(await fs.readFile(path.join(SRC, f)));
    h.update("\0");
  }
  return h.digest("hex");
}

async function gitVersion() {
  const r = await $({ cwd: ROOT, nothrow: true, quiet: true })`git describe --tags --always --dirty`;
  return r.exitCode === 0 ? r.stdout.trim() : "";
}

export async function buildVminitd({ arches = ARCHES, force = false, log = (m) => process.stderr.write(m + "\n") } = {}) {
  const go = findGo();
  const env = { ...process.env, GOTOOLCHAIN: "local", GOFLAGS: "-buildvcs=false" };
  const goVersion = (await $({ env })`${go} env GOVERSION`).stdout.trim();
  const key = await sourceKey(goVersion);
  const cacheRoot = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "container-build");
  const results = [];
  let modulesChecked = false;
  let version;
  for (const arch of arches) {
    const started = Date.now();
    const cacheDir = path.join(cacheRoot, `vminitd-${arch}-${key.slice(0, 32)}`);
    const cached = path.join(cacheDir, "vminitd");
    const out = path.join(ROOT, "build", "vminitd", arch, "vminitd");
    let hit = !force && (await fs.pathExists(cached));
    if (!hit) {
      if (!modulesChecked) {
        // Download modules only when the module cache lacks some.
        const offline = await $({ cwd: SRC, env: { ...env, GOPROXY: "off", GOFLAGS: "-mod=readonly -buildvcs=false" }, nothrow: true, quiet: true })`${go} list -deps ./cmd/vminitd`;
        if (offline.exitCode !== 0) {
          log("build-vminitd: go mod download");
          await $({ cwd: SRC, env })`${go} mod download`;
        }
        modulesChecked = true;
      }
      version ??= (await gitVersion()) || `src-${key.slice(0, 12)}`;
      const tmpDir = `${cacheDir}.tmp-${process.pid}`;
      await fs.remove(tmpDir);
      await fs.mkdirp(tmpDir);
      await $({
        cwd: SRC,
        env: { ...env, CGO_ENABLED: "0", GOOS: "linux", GOARCH: arch },
      })`${go} build -trimpath -ldflags ${`-s -w -X main.version=${version}`} -o ${path.join(tmpDir, "vminitd")} ./cmd/vminitd`;
      await fs.writeFile(path.join(tmpDir, "version"), version + "\n");
      await fs.remove(cacheDir);
      await fs.rename(tmpDir, cacheDir);
    }
    await fs.mkdirp(path.dirname(out));
    await fs.copy(cached, out, { overwrite: true });
    await fs.chmod(out, 0o755);
    const size = (await fs.stat(out)).size;
    const builtVersion = (await fs.readFile(path.join(cacheDir, "version"), "utf8")).trim();
    const ms = Date.now() - started;
    log(`build-vminitd: ${arch} ${hit ? "cached" : "built"} in ${ms} ms, ${(size / 1048576).toFixed(2)} MiB, version ${builtVersion} -> ${path.relative(ROOT, out)}`);
    results.push({ arch, path: out, size, cached: hit, ms, key, version: builtVersion });
  }
  return results;
}

const isMain = process.argv.slice(1).some((a) => path.resolve(a) === fileURLToPath(import.meta.url));
if (isMain) {
  const arch = argv.arch;
  if (arch !== undefined && !ARCHES.includes(arch)) {
    process.stderr.write(`build-vminitd: unknown --arch ${arch} (want ${ARCHES.join(" or ")})\n`);
    process.exit(2);
  }
  await buildVminitd({ arches: arch ? [arch] : ARCHES, force: Boolean(argv.force) });
}
