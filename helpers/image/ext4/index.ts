// A user-space ext4 writer: OCI layer tars in, one sparse ext4 image out.
// A leaf library: it knows tar and ext4, nothing of the image store.
export { Ext4Writer, type Ext4Summary, type Ext4WriterOptions } from "./writer.js";
