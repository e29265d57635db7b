// Package binfmt registers binfmt_misc rules, so that the guest kernel runs
// binaries of another architecture (an amd64 image on an arm64 guest, say)
// through an emulator: Rosetta on Apple silicon, qemu-user elsewhere.
package binfmt

import (
	"fmt"
	"path"
	"strings"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Rule is one binfmt_misc registration matching files by their first bytes
// (type M, offset 0): a file whose first len(Magic) bytes agree with Magic
// on every bit set in Mask is run as "Interpreter <file> <args>".
type Rule struct {
	// Name is the entry's file name under /proc/sys/fs/binfmt_misc.
	Name string
	// Magic is the bytes to match at offset 0.
	Magic []byte
	// Mask selects the bits compared; same length as Magic, or empty to
	// compare every bit.
	Mask []byte
	// Interpreter is the absolute path of the emulator.
	Interpreter string
	// Flags are binfmt_misc's letters: P (preserve argv[0]), O (pass the
	// binary as an open fd), C (credentials from the binary, implies O),
	// F (open the interpreter at registration, see Register).
	Flags string
}

// The kernel's limits (fs/binfmt_misc.c).
const (
	maxRegister = 1920 // MAX_REGISTER_LENGTH: one write to the register file
	maxMagic    = 128  // BINPRM_BUF_SIZE: 128 before Linux 5.1, 256 since
)

// String is the line to write to the register file:
// ":name:M:0:magic:mask:interpreter:flags", with every magic and mask byte
// written as \xHH so that neither can contain the ':' separator.
func (r Rule) String() string {
	return fmt.Sprintf(":%s:M:0:%s:%s:%s:%s", r.Name, escape(r.Magic), escape(r.Mask), r.Interpreter, r.Flags)
}

func escape(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, `\x%02x`, c)
	}
	return s.String()
}

// Validate checks r against the kernel's rules, so a bad rule fails with a
// message naming the field instead of the register file's bare EINVAL. The
// name must be usable as a file name and must not be one of the directory's
// own files; the interpreter is absolute, and no field may contain the ':'
// separator or a newline.
func (r Rule) Validate() error {
	switch {
	case r.Name == "" || r.Name == "." || r.Name == ".." || r.Name == "register" || r.Name == "status":
		return errdefs.InvalidArgumentf("binfmt_misc rule name %q is not allowed", r.Name)
	case strings.ContainsAny(r.Name, "/:\n\x00"):
		return errdefs.InvalidArgumentf("binfmt_misc rule name %q has '/', ':' or a control character", r.Name)
	case len(r.Magic) == 0 || len(r.Magic) > maxMagic:
		return errdefs.InvalidArgumentf("binfmt_misc rule %s: magic must be 1 to %d bytes, not %d", r.Name, maxMagic, len(r.Magic))
	case len(r.Mask) != 0 && len(r.Mask) != len(r.Magic):
		return errdefs.InvalidArgumentf("binfmt_misc rule %s: mask is %d bytes, magic %d", r.Name, len(r.Mask), len(r.Magic))
	case !path.IsAbs(r.Interpreter) || strings.ContainsAny(r.Interpreter, ":\n\x00"):
		return errdefs.InvalidArgumentf("binfmt_misc rule %s: interpreter %q must be an absolute path without ':'", r.Name, r.Interpreter)
	}
	for i, f := range r.Flags {
		if !strings.ContainsRune("POCF", f) || strings.ContainsRune(r.Flags[:i], f) {
			return errdefs.InvalidArgumentf("binfmt_misc rule %s: flags %q: each of P, O, C, F at most once", r.Name, r.Flags)
		}
	}
	if n := len(r.String()); n > maxRegister {
		return errdefs.InvalidArgumentf("binfmt_misc rule %s is %d bytes, more than the kernel's %d", r.Name, n, maxRegister)
	}
	return nil
}
