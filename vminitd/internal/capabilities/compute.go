package capabilities

import (
	"strings"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Default is Docker's default capability set for a container (moby's
// oci/caps.DefaultCapabilities), in number order.
var Default = []Cap{
	Chown, DacOverride, Fowner, Fsetid, Kill, Setgid, Setuid, Setpcap,
	NetBindService, NetRaw, SysChroot, Mknod, AuditWrite, Setfcap,
}

// all is the magic name in add or drop meaning every capability.
const all = "ALL"

// Compute returns the capability set for a container started with
// --cap-add add and --cap-drop drop, in number order, each once. The rules
// are moby's TweakCapabilities, checked against its source:
//
//   - ALL in add: every capability except those named in drop (ALL in drop
//     is then ignored: "--cap-add ALL --cap-drop ALL" keeps everything).
//   - else ALL in drop: exactly the capabilities in add.
//   - else: Default minus drop, plus add. A capability named in both add
//     and drop is therefore kept: add is applied after drop.
//
// Names are matched as Normalize does, "all" in any case; an unknown name
// is an invalidArgument error naming it and the list it came from. "ALL"
// means every capability this package knows (up to Last); Apply ignores
// those the running kernel does not have.
func Compute(add, drop []string) ([]Cap, error) {
	addSet, addAll, err := parseList("cap-add", add)
	if err != nil {
		return nil, err
	}
	dropSet, dropAll, err := parseList("cap-drop", drop)
	if err != nil {
		return nil, err
	}
	var s set
	switch {
	case addAll:
		s = setOf(All()) &^ dropSet
	case dropAll:
		s = addSet
	default:
		s = setOf(Default)&^dropSet | addSet
	}
	return s.list(), nil
}

// parseList normalizes the names of one flag's list; hasAll reports ALL.
func parseList(flag string, names []string) (s set, hasAll bool, err error) {
	for _, name := range names {
		if strings.EqualFold(name, all) {
			hasAll = true
			continue
		}
		c, err := Normalize(name)
		if err != nil {
			return 0, false, errdefs.New(errdefs.InvalidArgument, "%s: %w", flag, err)
		}
		s |= 1 << c
	}
	return s, hasAll, nil
}

// set is a capability bit mask: bit n is capability n, as in the kernel's
// 64-bit capability sets.
type set uint64

// setOf is the set of caps; numbers outside 0..63 are not in any kernel set
// and are left out (Sets.validate rejects them first).
func setOf(caps []Cap) set {
	var s set
	for _, c := range caps {
		if c >= 0 && c < 64 {
			s |= 1 << c
		}
	}
	return s
}

func (s set) has(c Cap) bool { return s&(1<<c) != 0 }

// list is s in number order.
func (s set) list() []Cap {
	var out []Cap
	for c := Cap(0); c < 64; c++ {
		if s.has(c) {
			out = append(out, c)
		}
	}
	return out
}
