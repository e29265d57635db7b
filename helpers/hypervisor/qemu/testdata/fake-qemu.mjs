#!/usr/bin/env node
// Stands in for qemu-system-*: speaks QMP on fd 3 and behaves as the kernel
// command line's `fake.mode=` says: run (until a signal), poweroff, panic,
// fail (bad arguments), hang (ignores SIGTERM).
import { appendFileSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";

const args = process.argv.slice(2);
const opt = (flag) => args[args.indexOf(flag) + 1];
const append = opt("-append") ?? "";
const mode = /fake\.mode=(\w+)/.exec(append)?.[1] ?? "run";
const consolePath = /path=((?:[^,]|,,)+)/.exec(args.find((a) => a.startsWith("file,id=con")) ?? "")?.[1]?.replaceAll(",,", ",");

if (mode === "fail") {
  process.stderr.write("qemu-system-x86_64: -kernel: could not load kernel\n");
  process.exit(1);
}
writeFileSync(opt("-pidfile"), `${process.pid}\n`);
const qmp = new Socket({ fd: 3, readable: true, writable: true });
const send = (obj) => qmp.write(JSON.stringify(obj) + "\n");
let buf = "";
qmp.setEncoding("utf8");
qmp.on("data", (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const msg = JSON.parse(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    send({ return: msg.execute === "query-status" ? { status: "running", running: true } : {}, id: msg.id });
  }
});
send({ QMP: { version: {}, capabilities: [] } });
const shutdown = (guest, reason) => {
  send({ event: "SHUTDOWN", data: { guest, reason } });
  setTimeout(() => process.exit(0), 10);
};
if (consolePath) appendFileSync(consolePath, "fake boot\n");
if (mode === "hang") process.on("SIGTERM", () => {});
else process.on("SIGTERM", () => shutdown(false, "host-signal"));
if (mode === "poweroff") setTimeout(() => shutdown(true, "guest-reset"), 100);
if (mode === "panic") {
  setTimeout(() => {
    appendFileSync(consolePath, "Kernel panic - not syncing: Attempted to kill init!\n");
    shutdown(true, "guest-reset");
  }, 100);
}
setInterval(() => {}, 1000);
