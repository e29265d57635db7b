package capabilities

import "github.com/container-vm/container/vminitd/internal/errdefs"

// Sets are the five capability sets of a thread (capabilities(7)).
type Sets struct {
	// Bounding limits what any later execve can grant, from file
	// capabilities or set-user-ID root binaries; it can only shrink.
	Bounding []Cap
	// Effective are the capabilities the kernel checks; a subset of
	// Permitted.
	Effective []Cap
	// Permitted are the capabilities the thread may make effective.
	Permitted []Cap
	// Inheritable are kept across execve for files whose inheritable file
	// capabilities name them.
	Inheritable []Cap
	// Ambient are kept across execve of any file that is not privileged
	// (set-user-ID or with file capabilities); each must be in Permitted
	// and Inheritable.
	Ambient []Cap
}

// ForUser returns the sets Docker gives a process running as uid with the
// capabilities caps (moby's oci.SetCapabilities):
//
//   - root (uid 0) gets caps as its bounding, effective and permitted sets;
//   - any other user gets caps only as its bounding set, "to match what
//     execve does": a non-root process has no capabilities after execve
//     unless a file grants them, and the bounding set caps what a file
//     (ping with cap_net_raw, say) may grant.
//
// Inheritable and ambient stay empty: Docker stopped filling the
// inheritable set in 20.10.14 (CVE-2022-24769), since with it a file's
// inheritable capabilities would be granted to a non-root user.
func ForUser(caps []Cap, uid uint32) Sets {
	s := Sets{Bounding: caps}
	if uid == 0 {
		s.Effective, s.Permitted = caps, caps
	}
	return s
}

// validate checks what the kernel would otherwise reject halfway through
// Apply with a bare EPERM or EINVAL.
func (s Sets) validate() error {
	for _, list := range [][]Cap{s.Bounding, s.Effective, s.Permitted, s.Inheritable, s.Ambient} {
		for _, c := range list {
			if c < 0 || c > Last {
				return errdefs.InvalidArgumentf("unknown capability %s", c)
			}
		}
	}
	p, i := setOf(s.Permitted), setOf(s.Inheritable)
	if extra := setOf(s.Effective) &^ p; extra != 0 {
		return errdefs.InvalidArgumentf("effective capabilities %v are not permitted", extra.list())
	}
	if extra := setOf(s.Ambient) &^ (p & i); extra != 0 {
		return errdefs.InvalidArgumentf("ambient capabilities %v are not both permitted and inheritable", extra.list())
	}
	return nil
}
