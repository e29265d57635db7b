import { describe, expect, it } from "vitest";
import { makeTar, paxHeader } from "../testing.js";
import { readLayer, type LayerEntry } from "./layer.js";

async function entries(tar: Buffer, chunkSize = 700): Promise<Omit<LayerEntry, "body">[]> {
  // Odd-sized chunks: headers and PAX data arrive split.
  const source = (async function* () {
    for (let i = 0; i < tar.length; i += chunkSize) yield tar.subarray(i, i + chunkSize);
  })();
  const out: Omit<LayerEntry, "body">[] = [];
  for await (const { body: _body, ...entry } of readLayer(source)) out.push(entry);
  return out;
}

/** Sets a header's typeflag and size field and fixes its checksum. */
function patchHeader(header: Buffer, type: string, size?: number): Buffer {
  const out = Buffer.from(header);
  out.write(type, 156);
  if (size !== undefined) out.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  out.fill(" ", 148, 156);
  let sum = 0;
  for (const byte of out.subarray(0, 512)) sum += byte;
  out.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return out;
}

const latin1 = (s: string): string => Buffer.from(s).toString("latin1");

describe("layer reader", () => {
  it("keeps PAX xattr values and names byte for byte", async () => {
    const value = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xc0, 0xff, 0xfe, 0x80]);
    const [entry, plain] = await entries(
      await makeTar([
        { name: "bin/ファイル", data: "x", paxRecords: { "SCHILY.xattr.security.capability": value, "SCHILY.xattr.user.\u00e9": "v" } },
        { name: "plain", data: "y" },
      ]),
    );
    expect(entry!.name).toBe(latin1("bin/ファイル"));
    expect(entry!.xattrs).toEqual([
      ["security.capability", value],
      [latin1("user.\u00e9"), Buffer.from("v")],
    ]);
    expect(plain).toMatchObject({ name: "plain", xattrs: [] });
  });

  it("reads names tar-stream packs as PAX, and long link targets", async () => {
    const long = "d/".repeat(80) + "f";
    const [file, link] = await entries(await makeTar([{ name: long, data: "x" }, { name: "l", type: "symlink", linkname: "ü".repeat(120) }]));
    expect(file!.name).toBe(long);
    expect(link!.linkname).toBe(latin1("ü".repeat(120)));
  });

  it("reads PAX times, owners and sizes", async () => {
    const [entry] = await entries(
      await makeTar([{ name: "f", data: "abc", uid: 5, paxRecords: { mtime: "-1.25", atime: "12.000000001999", uid: "4000000000", gid: "70000" } }]),
    );
    expect(entry).toMatchObject({ size: 3, uid: 4_000_000_000, gid: 70_000, mtime: { sec: -2, nsec: 750_000_000 }, atime: { sec: 12, nsec: 1 }, ctime: { sec: -2, nsec: 750_000_000 } });
  });

  it("puts a global header's records under each entry's own, as tar-stream does", async () => {
    const global = patchHeader(paxHeader({ "SCHILY.xattr.user.g": "global", "SCHILY.xattr.user.both": "global" }), "g");
    const rest = await makeTar([
      { name: "own", data: "x", paxRecords: { "SCHILY.xattr.user.both": "own" } },
      { name: "none", data: "x" },
    ]);
    const [own, none] = await entries(Buffer.concat([global, rest]));
    expect(new Map(own!.xattrs)).toEqual(new Map([["user.g", Buffer.from("global")], ["user.both", Buffer.from("own")]]));
    expect(none!.xattrs).toEqual([]); // tar-stream only merges the global records into an entry's own
  });

  it("stays in step when a directory header claims a size", async () => {
    const dir = await makeTar([{ name: "d/", type: "directory" }]);
    const rest = await makeTar([{ name: "d/f", data: "x".repeat(1000), paxRecords: { "SCHILY.xattr.user.a": "1" } }]);
    const [d, f] = await entries(Buffer.concat([patchHeader(dir.subarray(0, 512), "5", 4096), rest]), 333);
    expect(d).toMatchObject({ name: "d/", type: "directory" });
    expect(f).toMatchObject({ name: "d/f", size: 1000, xattrs: [["user.a", Buffer.from("1")]] });
  });

  it("drains the data of entries nobody reads", async () => {
    const names = (await entries(await makeTar([{ name: "a", data: "1".repeat(5000) }, { name: "b", data: "2" }]))).map((e) => e.name);
    expect(names).toEqual(["a", "b"]);
  });
});
