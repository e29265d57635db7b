// A container's writable rootfs: a copy-on-write clone of the image's ext4,
// made in milliseconds whatever the image's size. With QEMU that is a qcow2
// overlay whose backing file is the read-only image; Virtualization.framework
// opens only raw images, so on macOS it is an APFS clone (clonefile).
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { ContainerError } from "../../lib/errors/index.js";

const run = promisify(execFile);

export interface RootfsDisk {
  path: string;
  format: "qcow2" | "raw";
}

/** Where a container's rootfs goes in its bundle, and in which format, on this platform. */
export function rootfsDisk(bundle: string, platform: NodeJS.Platform = process.platform): RootfsDisk {
  return platform === "darwin" ? { path: join(bundle, "rootfs.ext4"), format: "raw" } : { path: join(bundle, "rootfs.qcow2"), format: "qcow2" };
}

export async function cloneRootfs(imageRootfs: string, disk: RootfsDisk): Promise<void> {
  try {
    if (disk.format === "raw") {
      // FICLONE_FORCE: a clone or an error, never a full copy of the image.
      await copyFile(imageRootfs, disk.path, constants.COPYFILE_FICLONE_FORCE);
    } else {
      await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", imageRootfs, disk.path]);
    }
  } catch (err) {
    throw new ContainerError("internal", `cannot create the container's rootfs: ${(err as Error).message.split("\n")[0]}`, {
      cause: err,
    });
  }
}
