// The registry client (OCI distribution / Docker registry v2), the user's
// credentials (ours, the docker config's, credential helpers), the pull that
// fetches an image through the client into the content store, and the push
// that uploads one from it.
export type { Credentials } from "./auth.js";
export { RegistryClient, type RegistryOptions } from "./client.js";
export { registryCredentials, removeLogin, saveLogin } from "./credentials.js";
export { DEFAULT_CONCURRENT_DOWNLOADS, pullImage, type PullRequest } from "./pull.js";
export { DEFAULT_CONCURRENT_UPLOADS, pushImage, type PushRequest } from "./push.js";
