#!/usr/bin/env zx
// `npm run bench`: builds the host code and runs every benchmark (bench/main.ts).
// BENCH_ITERATIONS (default 10) and BENCH_ONLY (e.g. `exec,throughput`; the
// keys are in bench/options.ts) choose what runs. The pull row needs
// debootstrap, installed here rather than by `npm run setup`, so the set-up
// CI runs stays lean.
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { $ } from "zx";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const only = (process.env.BENCH_ONLY ?? "").split(",").map((s) => s.trim()).filter(Boolean);
if ((only.length === 0 || only.includes("pull")) && !existsSync("/usr/sbin/debootstrap")) {
  console.log("==> installing debootstrap (the pull row's Debian image)");
  const sudo = process.getuid() === 0 ? [] : ["sudo"];
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await $({ env })`${sudo} apt-get install -y -q --no-install-recommends debootstrap`.nothrow().then(async (r) => {
    if (r.exitCode !== 0) {
      await $({ env })`${sudo} apt-get update -q`;
      await $({ env })`${sudo} apt-get install -y -q --no-install-recommends debootstrap`;
    }
  });
}
await $({ cwd: root })`npx tsc -p tsconfig.json`;
await $({ cwd: root, stdio: "inherit" })`node dist/bench/main.js`;
