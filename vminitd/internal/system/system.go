// Package system holds the agent's guest-wide settings: sysctls, the wall
// clock and vminitd's own environment.
package system

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// ProcSys is where sysctls live.
const ProcSys = "/proc/sys"

// sysctlComponent is one component of a sysctl name: what the kernel's
// tables use (names of links, such as "eth0", included), but never "." or
// "..".
var sysctlComponent = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.:@+-]*$`)

// SysctlPath checks a sysctl name ("vm.swappiness", or with slashes,
// "net/ipv4/conf/eth0.1/forwarding", which may hold dots) and returns its
// file under dir.
func SysctlPath(dir, name string) (string, error) {
	sep := "."
	if strings.Contains(name, "/") {
		sep = "/"
	}
	comps := strings.Split(name, sep)
	for _, c := range comps {
		if !sysctlComponent.MatchString(c) || strings.Contains(c, "..") {
			return "", errdefs.InvalidArgumentf("malformed sysctl name %q", name)
		}
	}
	return filepath.Join(append([]string{dir}, comps...)...), nil
}

// Sysctl writes value (when set) to the sysctl name under dir, then reads it
// back, without its trailing newline.
func Sysctl(dir, name string, value *string) (string, error) {
	p, err := SysctlPath(dir, name)
	if err != nil {
		return "", err
	}
	if value != nil {
		if err := writeSysctl(p, *value); err != nil {
			return "", sysctlError(name, "set", err)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", sysctlError(name, "read", err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// writeSysctl writes v in one write(2), as the kernel parses it, to an
// existing file only.
func writeSysctl(p, v string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func sysctlError(name, op string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errdefs.NotFoundf("no sysctl %q", name)
	case errors.Is(err, unix.EISDIR):
		return errdefs.InvalidArgumentf("%q is a sysctl directory, not a setting", name)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ERANGE):
		return errdefs.InvalidArgumentf("the kernel refused the value of sysctl %q", name)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return errdefs.InvalidArgumentf("cannot %s sysctl %q: %v", op, name, err)
	}
	return errdefs.Internalf("%s sysctl %q: %w", op, name, err)
}

// SetClock sets CLOCK_REALTIME to t.
func SetClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return errdefs.InvalidArgumentf("the kernel refused time %v", t)
		}
		return errdefs.Internalf("set the clock: %w", err)
	}
	return nil
}

// CheckEnvKey refuses a name that setenv could not take.
func CheckEnvKey(key string) error {
	if key == "" || strings.ContainsAny(key, "=\x00") {
		return errdefs.InvalidArgumentf("malformed environment variable name %q", key)
	}
	return nil
}

// Setenv sets a variable of vminitd's own environment.
func Setenv(key, value string) error {
	if err := CheckEnvKey(key); err != nil {
		return err
	}
	if strings.IndexByte(value, 0) >= 0 {
		return errdefs.InvalidArgumentf("the value of %s has a NUL byte", key)
	}
	if err := os.Setenv(key, value); err != nil {
		return errdefs.Internalf("setenv %s: %w", key, err)
	}
	return nil
}

// Getenv reads a variable of vminitd's own environment.
func Getenv(key string) (value string, present bool, err error) {
	if err := CheckEnvKey(key); err != nil {
		return "", false, err
	}
	value, present = os.LookupEnv(key)
	return value, present, nil
}
