// Types only: what a service manager needs to run the apiserver.
export interface ServiceSpec {
  /** The Node binary, absolute. */
  node: string;
  /** The apiserver's entry point, absolute. */
  main: string;
  /** Environment the apiserver needs from the caller's (CONTAINER_*, XDG_*). */
  env: Record<string, string>;
  /** Where stdout and stderr go: the apiserver log. */
  logPath: string;
}

/** How `system start` runs the apiserver on this host. */
export type ServiceKind = "launchd" | "systemd" | "detached";
