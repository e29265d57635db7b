package process

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openPty makes a terminal pair in the rootfs's own devpts instance (mounted
// with newinstance by the RootfsPreparer), so the process finds its terminal
// under its /dev/pts. The slave comes from TIOCGPTPEER, never from a path
// lookup in the (untrusted) rootfs. rows and cols of 0 leave the size unset.
func openPty(rootfs string, rows, cols uint16) (master, slave *os.File, err error) {
	ptmx := filepath.Join(rootfs, "dev", "pts", "ptmx")
	fd, err := unix.Open(ptmx, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", ptmx, err)
	}
	// The master is non-blocking so that reads honour deadlines (drainGrace).
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	master = os.NewFile(uintptr(fd), "ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	if rows > 0 && cols > 0 {
		if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
			master.Close()
			return nil, nil, fmt.Errorf("set the terminal size: %w", err)
		}
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("open the pty's peer: %w", errno)
	}
	return master, os.NewFile(sfd, "pts"), nil
}

// resizePty sets the terminal's window size; the process gets SIGWINCH.
func resizePty(master *os.File, rows, cols uint16) error {
	raw, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	if err := raw.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}); err != nil {
		return err
	}
	return ioctlErr
}

// keepOpen is the pty master as the stdin copier's writer: the end of the
// host's input must not close the terminal the output is still read from.
type keepOpen struct{ *os.File }

func (keepOpen) Close() error { return nil }
