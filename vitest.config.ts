import { defineConfig } from "vitest/config";

// Three layers run separately: fast unit tests beside the code first, then the
// suites under test/ that boot real VMs (hypervisor contract, end to end),
// one file at a time (`--no-file-parallelism`, see scripts/test.mjs): VMs
// under TCG on two cores; then the reliability suite (soak, attack surface).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["{cli,apiserver,helpers,lib,scripts,kernel-config,bench}/**/*.test.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/{contract,e2e}/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: "reliability",
          include: ["test/reliability/**/*.test.ts"],
          testTimeout: 1_800_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
