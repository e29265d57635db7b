package server

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, unix.EROFS) {
			return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "create mount target: %w", err),
				"the guest root is read-only; mount under /run")
		}
		return errdefs.New(errdefs.CodeOf(err), "create mount target: %w", err)
	}
	return nil
}

// mountError gives a mount(2) failure its code.
func mountError(err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return errdefs.Wrap(errdefs.Internal, err)
	}
	switch errno {
	case unix.ENOENT, unix.ENXIO, unix.ENOTDIR:
		return errdefs.Wrap(errdefs.NotFound, err)
	case unix.ENODEV:
		return errdefs.WithHint(errdefs.Wrap(errdefs.Unsupported, err), "the guest kernel does not support this filesystem type")
	case unix.EBUSY:
		return errdefs.Wrap(errdefs.Exists, err)
	case unix.EINVAL, unix.ENOTBLK:
		return errdefs.Wrap(errdefs.InvalidArgument, err)
	case unix.EACCES, unix.EROFS:
		return errdefs.Wrap(errdefs.InvalidArgument, err)
	case unix.ENOMEM, unix.ENOSPC:
		return errdefs.Wrap(errdefs.ResourceExhausted, err)
	}
	return errdefs.Wrap(errdefs.Internal, err)
}
