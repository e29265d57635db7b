// Stands in for host.js in unit tests: speaks the same IPC protocol, with a
// local echo server in place of the guest. Kernel arguments steer it:
// `fake.poweroff` (the guest powers off after start), `fake.dial=PORT` (the
// guest connects to host PORT after start).
import { createConnection, createServer } from "node:net";
import { join } from "node:path";

// In the test's own directory, which the test removes (this process may be SIGKILLed).
const sock = join(process.env.FAKE_VZ_DIR, `echo-${process.pid}.sock`);
const echo = createServer((s) => s.pipe(s));
echo.listen(sock);
echo.unref();
let options;
const listening = new Set();

function stream(message) {
  const c = createConnection(sock, () => process.send(message, c, {}, () => c.destroy()));
}

function exitAfter(message) {
  process.send(message, undefined, {}, () => process.exit(0));
}

process.on("message", (msg) => {
  switch (msg.op) {
    case "create":
      options = msg.options;
      if (options.id === "fail-create") {
        process.send({ kind: "createFailed", error: JSON.stringify({ code: "invalidArgument", message: "bad config", hint: "fix it" }) });
      } else process.send({ kind: "created" });
      return;
    case "start":
      process.send({ kind: "started", request: msg.request });
      for (const arg of options.kernelArgs) {
        if (arg === "fake.poweroff") setTimeout(() => exitAfter({ kind: "guestStopped" }), 20);
        const port = /^fake\.dial=(\d+)$/.exec(arg)?.[1];
        if (port && listening.has(Number(port))) stream({ kind: "accepted", port: Number(port) });
      }
      return;
    case "stop":
      exitAfter({ kind: "stopped", request: msg.request });
      return;
    case "connect":
      if (msg.port === 1024) stream({ kind: "connected", request: msg.request });
      else process.send({ kind: "connectFailed", request: msg.request, error: JSON.stringify({ code: "unavailable", message: `nothing listens on ${msg.port}` }) });
      return;
    case "listen":
      listening.add(msg.port);
      return;
    case "unlisten":
      listening.delete(msg.port);
      return;
  }
});
process.on("disconnect", () => process.exit(0));
