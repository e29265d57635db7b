package process

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/user"
)

// StatInRoot stats p as a process chrooted into root would see it: absolute
// symlinks and ".." resolve inside root, never out of it. p is absolute, or
// relative to root.
func StatInRoot(root, p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return st, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootfd)
	fd, err := unix.Openat2(rootfd, p, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		// Kernel before 5.6: a plain join, right for all but absolute
		// symlinks. Only a pre-check; exec itself runs inside the chroot.
		err = unix.Stat(filepath.Join(root, p), &st)
		if err != nil {
			return st, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		return st, nil
	}
	if err != nil {
		return st, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return st, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return st, nil
}

func isDir(st unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

func isExecutable(st unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0
}

// EnvValue is the value of key in a KEY=VALUE list; the last one wins, as for
// os/exec.
func EnvValue(env []string, key string) (string, bool) {
	value, found := "", false
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			value, found = v, true
		}
	}
	return value, found
}

// LookPath finds the executable for file as a process chrooted into root,
// working in cwd, with environment env would: a name with a slash is taken as
// is, any other is searched in env's PATH (user.DefaultPath when unset). It returns
// the path to exec inside the root.
func LookPath(root, cwd, file string, env []string) (string, error) {
	if file == "" {
		return "", errdefs.InvalidArgumentf("empty executable name")
	}
	inRoot := func(p string) string {
		if path.IsAbs(p) {
			return p
		}
		return path.Join(cwd, p)
	}
	if strings.Contains(file, "/") {
		st, err := StatInRoot(root, inRoot(file))
		switch {
		case errors.Is(err, os.ErrNotExist):
			return "", errdefs.NotFoundf("executable %q not found", file)
		case errors.Is(err, unix.ENOTDIR):
			return "", errdefs.NotFoundf("executable %q not found: a path component is not a directory", file)
		case err != nil:
			return "", errdefs.Internalf("executable %q: %w", file, err)
		case isDir(st):
			return "", errdefs.InvalidArgumentf("executable %q is a directory", file)
		case !isExecutable(st):
			return "", errdefs.InvalidArgumentf("%q is not an executable file (permission denied)", file)
		}
		return file, nil
	}
	search, ok := EnvValue(env, "PATH")
	if !ok {
		search = user.DefaultPath
	}
	for _, dir := range strings.Split(search, ":") {
		if dir == "" {
			dir = "." // an empty PATH entry means the working directory
		}
		candidate := path.Join(dir, file)
		if st, err := StatInRoot(root, inRoot(candidate)); err == nil && isExecutable(st) {
			if !path.IsAbs(candidate) {
				candidate = "./" + candidate
			}
			return candidate, nil
		}
	}
	return "", errdefs.NotFoundf("executable %q not found in $PATH", file)
}

// CheckDir verifies that dir (absolute, inside root) is a directory.
func CheckDir(root, dir string) error {
	st, err := StatInRoot(root, dir)
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, unix.ENOTDIR):
		return errdefs.NotFoundf("working directory %q not found in the rootfs", dir)
	case err != nil:
		return errdefs.Internalf("working directory %q: %w", dir, err)
	case !isDir(st):
		return errdefs.InvalidArgumentf("working directory %q is not a directory", dir)
	}
	return nil
}
