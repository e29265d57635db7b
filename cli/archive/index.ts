// The host side of `container cp`: host paths to tar streams and back, with
// `docker cp`'s naming rules. The container side is vminitd/internal/archive.
export { copiesContents, packPath } from "./pack.js";
export { extractTo, type ExtractOptions } from "./extract.js";
