// A container's writable rootfs: a copy-on-write clone of the image's ext4,
// made in milliseconds whatever the image's size. On QEMU hosts that is a
// qcow2 overlay whose backing file is the read-only image.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { ContainerError } from "../../lib/errors/index.js";

const run = promisify(execFile);
export const ROOTFS_FILE = "rootfs.qcow2";

export async function cloneRootfs(imageRootfs: string, target: string): Promise<void> {
  try {
    await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", imageRootfs, target]);
  } catch (err) {
    throw new ContainerError("internal", `cannot create the container's rootfs: ${(err as Error).message.split("\n")[0]}`, {
      cause: err,
    });
  }
}
