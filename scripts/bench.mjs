#!/usr/bin/env zx
// `npm run bench`: builds the host code and runs every benchmark (bench/main.ts).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { $ } from "zx";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
await $({ cwd: root })`npx tsc -p tsconfig.json`;
await $({ cwd: root, stdio: "inherit" })`node dist/bench/main.js`;
