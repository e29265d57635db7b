#!/usr/bin/env zx
// README command (2): the whole test suite, fastest first — Go unit tests,
// the macOS bridge's Rust tests, TypeScript unit tests, then the suites that
// boot real VMs. Ends with one summary line "tests: N passed, N failed".
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { $ } from "zx";

$.verbose = false;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);
const results = { passed: 0, failed: 0 };
let ok = true;

async function goTests() {
  console.log("==> vminitd: go vet + go test");
  await $({ cwd: path.join(root, "vminitd"), stdio: "inherit" })`go vet ./...`;
  const r = await $({ cwd: path.join(root, "vminitd") })`go test -json ./...`.nothrow();
  const outputs = {};
  for (const line of r.stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const ev = JSON.parse(line);
    if (!ev.Test) continue;
    if (ev.Action === "pass") results.passed++;
    if (ev.Action === "output") (outputs[`${ev.Package} ${ev.Test}`] ??= []).push(ev.Output);
    if (ev.Action === "fail") {
      results.failed++;
      console.log(`FAIL ${ev.Package} ${ev.Test}\n${(outputs[`${ev.Package} ${ev.Test}`] ?? []).join("")}`);
    }
  }
  if (r.exitCode !== 0) {
    ok = false;
    console.log(r.stdout.split("\n").filter((l) => !l.startsWith("{")).join("\n"), r.stderr);
  }
}

// The macOS bridge: its pure parts (config translation, validation, error
// envelopes) are unit-tested here; its Virtualization.framework glue is
// type-checked and linted for aarch64-apple-darwin when that target is
// installed (scripts/setup.mjs adds it), which needs no macOS SDK.
async function bridgeTests() {
  const cwd = path.join(root, "native", "virtualization-bridge");
  console.log("==> virtualization-bridge: cargo test");
  const r = await $({ cwd })`cargo test -j2 --quiet`.nothrow();
  for (const m of r.stdout.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
    results.passed += Number(m[1]);
    results.failed += Number(m[2]);
  }
  if (r.exitCode !== 0) {
    ok = false;
    console.log(r.stdout, r.stderr);
  }
  // The addon's packaging: @napi-rs/cli builds the crate into a .node (on
  // Linux without the Virtualization.framework glue, which is macOS only).
  console.log("==> virtualization-bridge: napi build");
  const napiOut = await fs.mkdtemp(path.join(os.tmpdir(), "napi-"));
  const n = await $({ cwd })`npx napi build --release --manifest-path Cargo.toml --output-dir ${napiOut}`.nothrow();
  const built = (await fs.readdir(napiOut)).includes("virtualization-bridge.node");
  await fs.rm(napiOut, { recursive: true, force: true });
  if (n.exitCode !== 0 || !built) {
    ok = false;
    results.failed++;
    console.log(n.stdout, n.stderr);
  } else {
    results.passed++;
  }
  const targets = await $`rustup target list --installed`.nothrow();
  if (!targets.stdout.includes("aarch64-apple-darwin")) {
    console.log("==> virtualization-bridge: macOS glue NOT type-checked (rustup target aarch64-apple-darwin is not installed)");
    return;
  }
  console.log("==> virtualization-bridge: cargo clippy --target aarch64-apple-darwin");
  const c = await $({ cwd })`cargo clippy -j2 --quiet --target aarch64-apple-darwin -- -D warnings`.nothrow();
  if (c.exitCode !== 0) {
    ok = false;
    console.log(c.stderr);
  }
}

async function vitest(project, extra = []) {
  console.log(`==> vitest: ${project}`);
  const out = path.join(await fs.mkdtemp(path.join(os.tmpdir(), "vitest-")), "results.json");
  const r = await $({ stdio: ["ignore", "inherit", "inherit"] })`npx vitest run --project ${project} ${extra} --reporter=default --reporter=json --outputFile.json=${out}`.nothrow();
  try {
    const json = JSON.parse(await fs.readFile(out, "utf8"));
    results.passed += json.numPassedTests;
    results.failed += json.numFailedTests;
  } catch {
    results.failed++;
  }
  if (r.exitCode !== 0) ok = false;
}

console.log("==> type check");
await $({ stdio: "inherit" })`npx tsc -p tsconfig.check.json`;
await $`npx tsc -p tsconfig.json`;
await goTests();
await bridgeTests();
await vitest("unit");
await vitest("e2e", ["--no-file-parallelism"]);
await vitest("reliability", ["--no-file-parallelism"]);
console.log(`tests: ${results.passed} passed, ${results.failed} failed`);
process.exit(ok && results.failed === 0 ? 0 : 1);
