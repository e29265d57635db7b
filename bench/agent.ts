// The bench's own gRPC channel to a running container's vminitd, through the
// runtime helper's agent splice socket (<runtime dir>/c/<short id>/agent.sock):
// every connection to it is spliced by the helper onto a fresh vsock
// connection to the guest's agent port. That is the same path the helper's
// own agent calls take (helpers/agent/client.ts), so a Ping on it is the
// floor of any round trip the helper makes to the guest. The helper opens the
// socket on its first agent call (exec, stats, kill), not at boot.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Metadata } from "@grpc/grpc-js";
import { AgentClient as GrpcAgentClient, type PingResponse } from "../helpers/agent/gen/agent.js";
import { call, insecure, unixTarget } from "../lib/grpc/index.js";
import { waitFor, type TestEnv } from "../test/support/env.js";

export interface BenchAgent {
  ping(memory?: boolean): Promise<PingResponse>;
  close(): void;
}

/** The container's full id, from `inspect`. */
export async function containerId(env: TestEnv, name: string): Promise<string> {
  const r = await env.cli(["inspect", name]);
  if (r.code !== 0) throw new Error(`inspect ${name} failed: ${r.stderr}`);
  const [details] = JSON.parse(r.stdout) as { summary: { id: string } }[];
  if (!details) throw new Error(`inspect ${name}: no such container`);
  return details.summary.id;
}

/** Connects to the agent of a running container whose helper has already made an agent call. */
export async function connectBenchAgent(env: TestEnv, name: string): Promise<BenchAgent> {
  const id = await containerId(env, name);
  const socket = join(env.env.CONTAINER_RUNTIME_DIR!, "c", id.slice(0, 12), "agent.sock");
  await waitFor(() => existsSync(socket), 30_000, `${socket} (the helper's agent splice socket)`);
  const grpc = new GrpcAgentClient(unixTarget(socket), insecure());
  const agent: BenchAgent = {
    ping: (memory = false) => call(grpc.ping, grpc, { memory }, new Metadata()),
    close: () => grpc.close(),
  };
  try {
    await agent.ping();
  } catch (err) {
    agent.close();
    throw err;
  }
  return agent;
}
