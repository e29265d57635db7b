package capabilities

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Apply sets the calling thread's capability sets to s. Capabilities are
// per thread and execve(2) takes those of the thread calling it, so the
// caller runs Apply and the exec on one goroutine locked to its OS thread
// (runtime.LockOSThread, never unlocked: a thread whose privileges changed
// must end with its goroutine rather than run other Go code).
//
// The whole sequence before exec, and why in this order:
//
//  1. If the process changes user: prctl(PR_SET_KEEPCAPS, 1), then
//     setgroups, setresgid, setresuid, still as root, with every capability
//     those need whatever the user dropped. KEEPCAPS keeps the permitted
//     set through the switch to a non-root uid (the effective and ambient
//     sets are cleared all the same). Use raw per-thread syscalls here, not
//     syscall.Setresuid, which changes every thread of the process.
//  2. Apply, which in turn:
//     a. raises the effective set to the permitted set, since step 1
//     emptied it and step b needs CAP_SETPCAP in it;
//     b. drops from the bounding set every capability not in s.Bounding
//     (PR_CAPBSET_DROP), which needs CAP_SETPCAP, so before step c
//     possibly removes it;
//     c. sets the effective, permitted and inheritable sets (capset), after
//     b because an inheritable capability must be in the bounding set;
//     d. clears the ambient set and raises each of s.Ambient
//     (PR_CAP_AMBIENT), after c because each must already be permitted and
//     inheritable, and after step 1 because a uid change clears it.
//  3. prctl(PR_SET_NO_NEW_PRIVS, 1) if asked for. It only restricts what
//     execve grants (set-user-ID bits, file capabilities), so it can go
//     anywhere before the exec; last is the convention (runc).
//  4. execve.
//
// Capabilities above the running kernel's last one are ignored, and every
// one the kernel has beyond s.Bounding is dropped from the bounding set,
// even those newer than this package (Last). Sets that break the kernel's
// rules (effective not permitted, ambient not permitted and inheritable)
// are an invalidArgument error before anything changes. After any other
// error the thread's sets are somewhere between what they were and s: do
// not exec, and let the locked thread end.
func Apply(s Sets) error {
	if err := s.validate(); err != nil {
		return err
	}
	last, err := kernelLastCap()
	if err != nil {
		return errdefs.Internalf("find the kernel's last capability: %w", err)
	}
	known := set(1)<<(last+1) - 1
	bounding := setOf(s.Bounding) & known
	ambient := setOf(s.Ambient) & known

	// a. Effective := permitted.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return errdefs.Internalf("capget: %w", err)
	}
	for i := range data {
		data[i].Effective = data[i].Permitted
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return errdefs.Internalf("raise the effective capabilities: %w", err)
	}

	// b. Bounding set.
	for c := Cap(0); c <= last; c++ {
		if bounding.has(c) {
			continue
		}
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err != nil {
			return errdefs.Internalf("read %s in the bounding set: %w", c, err)
		}
		if in == 0 {
			continue // dropping needs CAP_SETPCAP even when there is nothing to drop
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return errdefs.Internalf("drop %s from the bounding set: %w", c, err)
		}
	}

	// c. Effective, permitted, inheritable.
	data = toData(setOf(s.Effective)&known, setOf(s.Permitted)&known, setOf(s.Inheritable)&known)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return errdefs.Internalf("capset: %w", err)
	}

	// d. Ambient.
	err = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	if errors.Is(err, unix.EINVAL) && ambient == 0 {
		return nil // a kernel before 4.3, with no ambient set to clear
	}
	if err != nil {
		return errdefs.Internalf("clear the ambient capabilities: %w", err)
	}
	for _, c := range ambient.list() {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return errdefs.Internalf("raise ambient %s: %w", c, err)
		}
	}
	return nil
}

// toData splits 64-bit sets into the two 32-bit words of capset's
// _LINUX_CAPABILITY_VERSION_3.
func toData(effective, permitted, inheritable set) [2]unix.CapUserData {
	var d [2]unix.CapUserData
	for i := range d {
		shift := 32 * uint(i)
		d[i] = unix.CapUserData{
			Effective:   uint32(effective >> shift),
			Permitted:   uint32(permitted >> shift),
			Inheritable: uint32(inheritable >> shift),
		}
	}
	return d
}

// kernelLastCap is the running kernel's highest capability: the last one
// PR_CAPBSET_READ accepts. Asked of the kernel rather than read from
// /proc/sys/kernel/cap_last_cap, which need not be visible after a chroot.
func kernelLastCap() (Cap, error) {
	for c := Cap(0); c < 64; c++ {
		_, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) && c > 0 {
			return c - 1, nil
		}
		if err != nil {
			return 0, err
		}
	}
	return 63, nil
}
