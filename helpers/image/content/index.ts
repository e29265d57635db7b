// The content store: verified blobs by digest, and the image records naming them.
export { ContentStore, MAX_DOCUMENT_BYTES, digestHex, digestOf, type Ingested, type PartialIngest } from "./store.js";
export { ImageRecords } from "./records.js";
export { GcLock } from "./lock.js";
export { Mutex } from "./mutex.js";
