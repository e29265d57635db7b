package binfmt

import (
	"debug/elf"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// arches are the architectures a rule can be made for, by kernel name
// (uname -m), with their ELF machine and whether their mask keeps qemu's
// x86 quirk (see elfMatch).
var arches = map[string]struct {
	machine    elf.Machine
	looseIdent bool
}{
	"x86_64":  {elf.EM_X86_64, true},
	"aarch64": {elf.EM_AARCH64, false},
}

// aliases maps OCI/Go architecture names to kernel names.
var aliases = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// kernelArch returns the kernel name of arch, given either an OCI/Go name
// ("amd64") or a kernel one ("x86_64"); unknown ones are unsupported.
func kernelArch(arch string) (string, error) {
	if k, ok := aliases[arch]; ok {
		arch = k
	}
	if _, ok := arches[arch]; !ok {
		return "", errdefs.Unsupportedf("architecture %q is not supported for emulation (amd64 and arm64 are)", arch)
	}
	return arch, nil
}

// ForArch returns the rule that runs imageArch binaries on a guestArch
// kernel through the qemu-user emulator at interpreter (a static
// qemu-<arch> binary), or needed false when the two are the same
// architecture. Names are OCI/Go ("amd64", "arm64") or kernel ("x86_64",
// "aarch64") ones; any other is an unsupported error. The rule is named
// "qemu-<kernel arch>", as qemu-binfmt-conf.sh names it.
//
// Its flags are "PF". P passes the program's own argv[0] on, which
// multi-call binaries need (busybox re-executes itself as "grep", say);
// qemu-user expects it when its own name, the interpreter path, ends in
// "-binfmt-P", as Debian's qemu-user-static installs it. F is required: the interpreter lives in the
// guest's filesystem, outside the container's rootfs, so the kernel must
// open it at registration; looking it up at exec time would happen inside
// the container's root, where it does not exist. C (and the O it implies)
// is left out on purpose: with C a set-user-ID binary of the image runs the
// emulator with the binary's credentials, and qemu-user takes orders from
// its caller's environment (QEMU_LD_PREFIX, QEMU_STRACE, QEMU_GDB...), so
// any user could run code as root through any set-user-ID binary. Without
// C such binaries run with the caller's own credentials, as under
// qemu-binfmt-conf.sh's defaults.
func ForArch(guestArch, imageArch, interpreter string) (rule Rule, needed bool, err error) {
	guest, err := kernelArch(guestArch)
	if err != nil {
		return Rule{}, false, err
	}
	image, err := kernelArch(imageArch)
	if err != nil {
		return Rule{}, false, err
	}
	if guest == image {
		return Rule{}, false, nil
	}
	a := arches[image]
	magic, mask := elfMatch(a.machine, a.looseIdent)
	rule = Rule{Name: "qemu-" + image, Magic: magic, Mask: mask, Interpreter: interpreter, Flags: "PF"}
	if err := rule.Validate(); err != nil {
		return Rule{}, false, err
	}
	return rule, true, nil
}

// Rosetta returns the rule that runs x86_64 binaries through Apple's
// Rosetta at interpreter (the "rosetta" binary of the Rosetta virtiofs
// share, /run/rosetta/rosetta by convention), as Apple's own containers
// register it: x86_64 ELF, flags "CF". F for the reason given at ForArch;
// C so that set-user-ID and file-capability binaries (sudo, ping) keep
// their privileges as on real hardware. The price is the one ForArch
// refuses for qemu-user: the translator runs with those privileges. We
// follow Apple, who ship Rosetta for this use and register it so.
func Rosetta(interpreter string) (Rule, error) {
	a := arches["x86_64"]
	magic, mask := elfMatch(a.machine, a.looseIdent)
	rule := Rule{Name: "rosetta", Magic: magic, Mask: mask, Interpreter: interpreter, Flags: "CF"}
	if err := rule.Validate(); err != nil {
		return Rule{}, err
	}
	return rule, nil
}
