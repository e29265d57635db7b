import { describe, expect, it } from "vitest";
import { createLogger } from "./index.js";

describe("createLogger", () => {
  it("writes one JSON object per line, with the component and the fields", () => {
    const lines: string[] = [];
    const log = createLogger({ component: "test", write: (l) => lines.push(l), fields: { id: "c1" } });
    log.info("hello", { err: new Error("boom") });
    log.debug("not shown at info");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: "info", msg: "hello", component: "test", id: "c1", err: { message: "boom" } });
  });

  it("a line that cannot be written (ENOSPC) is dropped, not thrown", () => {
    const log = createLogger({
      component: "test",
      write: () => {
        throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      },
    });
    expect(() => log.error("disk full")).not.toThrow();
  });
});
