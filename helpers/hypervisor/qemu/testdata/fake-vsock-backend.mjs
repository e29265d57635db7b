#!/usr/bin/env node
// Stands in for vhost-device-vsock: creates the vhost-user socket and serves
// the hybrid-vsock host socket; guest port 1024 echoes, other ports refuse.
import { createServer } from "node:net";

const vm = process.argv[process.argv.indexOf("--vm") + 1];
const params = Object.fromEntries(vm.split(",").map((kv) => kv.split("=")));
createServer(() => {}).listen(params.socket);
createServer((s) => {
  let line = "";
  const onData = (d) => {
    line += d.toString("latin1");
    const nl = line.indexOf("\n");
    if (nl < 0) return;
    s.removeListener("data", onData);
    const port = Number(/^CONNECT (\d+)$/.exec(line.slice(0, nl))?.[1]);
    if (port !== 1024) return s.end();
    s.write("OK 99\n");
    s.pipe(s);
  };
  s.on("data", onData);
}).listen(params["uds-path"]);
