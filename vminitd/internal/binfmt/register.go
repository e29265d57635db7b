package binfmt

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// MountPoint is where the binfmt_misc filesystem is mounted.
const MountPoint = "/proc/sys/fs/binfmt_misc"

// Register registers r with the kernel, first mounting binfmt_misc at
// MountPoint unless it is mounted (its register file exists). A rule of the
// same name already there is removed first, so Register can be called again
// with a new interpreter; processes already running are not affected.
//
// With the F flag the kernel opens the interpreter during this call, as the
// caller sees it, and keeps it open: call Register from the agent itself,
// not from inside a container's root, and only after mounting what provides
// the interpreter (the Rosetta share). Every container process then gets
// that file whatever its root, and the mount it lives on stays busy until
// the rule is removed.
//
// Errors: an invalid rule is invalidArgument; an interpreter the kernel
// cannot find (F) notFound; a kernel without binfmt_misc unsupported.
func Register(r Rule) error {
	return register(MountPoint, r, mountBinfmt)
}

// register is Register with the directory and the mount step given (the
// tests use a plain directory).
func register(dir string, r Rule, mount func(dir string) error) error {
	if err := r.Validate(); err != nil {
		return err
	}
	control := filepath.Join(dir, "register")
	_, err := os.Stat(control)
	if errors.Is(err, fs.ErrNotExist) {
		err = mount(dir)
	}
	if err != nil {
		return err
	}

	// Writing -1 to an entry's file removes it.
	if err := writeOnce(filepath.Join(dir, r.Name), "-1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errdefs.Internalf("remove the old binfmt_misc rule %s: %w", r.Name, err)
	}
	err = writeOnce(control, r.String())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT):
		return errdefs.NotFoundf("binfmt_misc rule %s: interpreter %q not found", r.Name, r.Interpreter)
	case errors.Is(err, unix.EEXIST):
		return errdefs.Existsf("binfmt_misc rule %s is already registered", r.Name)
	case errors.Is(err, unix.EINVAL):
		return errdefs.InvalidArgumentf("the kernel rejected binfmt_misc rule %q", r.String())
	}
	return errdefs.Internalf("register binfmt_misc rule %s: %w", r.Name, err)
}

// mountBinfmt mounts binfmt_misc on dir.
func mountBinfmt(dir string) error {
	err := unix.Mount("binfmt_misc", dir, "binfmt_misc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV):
		// No directory under /proc/sys/fs, or no such filesystem type.
		return errdefs.Unsupportedf("the kernel has no binfmt_misc (CONFIG_BINFMT_MISC): %v", err)
	}
	return errdefs.Internalf("mount binfmt_misc on %s: %w", dir, err)
}

// writeOnce writes s to an existing file in a single write(2), as the
// binfmt_misc files require.
func writeOnce(name, s string) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	n, err := f.Write([]byte(s))
	if err == nil && n < len(s) {
		err = io.ErrShortWrite
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Entry is the kernel's description of the registered rule name (its file
// under MountPoint): "enabled", the interpreter, the flags, the magic...
func Entry(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(MountPoint, name))
	if err != nil {
		return "", errdefs.Internalf("read binfmt_misc rule %s: %w", name, err)
	}
	return string(b), nil
}
