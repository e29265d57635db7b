// The image store: load image archives, list them, resolve one to a flattened
// ext4 rootfs for a platform. Callers depend on ./types.js and this factory.
export { createImageStore, type ImageStoreOptions } from "./store.js";
export { DEFAULT_MAX_UNPACKED_BYTES } from "./unpack/index.js";
export { normalizeReference, parseReference, type ImageReference } from "./reference.js";
export type { ImageConfig, ImageRecord, ImageStore, LoadOptions, Platform, ResolvedImage } from "./types.js";
