// The image store: load image archives, pull from registries, list them,
// resolve one to a flattened ext4 rootfs for a platform; tag, remove,
// inspect, save, push, prune. Callers depend on ./types.js and this factory.
export { createImageStore, type ImageStoreOptions } from "./store.js";
export { DEFAULT_MAX_UNPACKED_BYTES } from "./unpack/index.js";
export { diskUsage } from "./gc.js";
export { formatPlatform, parsePlatformString } from "./oci.js";
export { normalizeReference, parseReference, type ImageReference } from "./reference.js";
export type * from "./types.js";
