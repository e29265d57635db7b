package process

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// RunSelf runs vminitd itself with args (a helper mode such as `copy`),
// feeding it stdin and copying its stdout to stdout (either may be nil:
// /dev/null). A failure the child reports on stderr as "<code>\t<message>"
// comes back with that code. The child is reaped by the Reaper like any
// other, so PID 1's reaping never steals its status.
func (m *Manager) RunSelf(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	var toClose []*os.File
	closeAll := func() {
		for _, f := range toClose {
			_ = f.Close()
		}
		toClose = nil
	}
	defer closeAll()
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			toClose = append(toClose, r, w)
		}
		return r, w, err
	}
	var child [3]*os.File
	var copies []func() error
	var err error
	if stdin != nil {
		var w *os.File
		if child[0], w, err = pipe(); err != nil {
			return errdefs.Internalf("pipe: %w", err)
		}
		copies = append(copies, func() error {
			_, err := io.Copy(w, stdin)
			_ = w.Close()
			return err
		})
	} else if child[0], err = nullFile(false); err != nil {
		return errdefs.Wrap(errdefs.Internal, err)
	}
	if stdout != nil {
		var r *os.File
		if r, child[1], err = pipe(); err != nil {
			return errdefs.Internalf("pipe: %w", err)
		}
		copies = append(copies, func() error {
			_, err := io.Copy(stdout, r)
			return err
		})
	} else if child[1], err = nullFile(true); err != nil {
		return errdefs.Wrap(errdefs.Internal, err)
	}
	errR, errW, err := pipe()
	if err != nil {
		return errdefs.Internalf("pipe: %w", err)
	}
	child[2] = errW

	exited := make(chan Exit, 1)
	attr := &syscall.ProcAttr{Files: []uintptr{child[0].Fd(), child[1].Fd(), child[2].Fd()}}
	pid, err := m.reaper.Start(func() (int, error) {
		return syscall.ForkExec("/proc/self/exe", append([]string{"vminitd"}, args...), attr)
	}, func(e Exit) { exited <- e })
	for _, f := range child {
		_ = f.Close()
	}
	if err != nil {
		return errdefs.Internalf("start vminitd %s: %w", args[0], err)
	}
	_ = errW.Close()
	done := make(chan error, len(copies))
	for _, c := range copies {
		go func() { done <- c() }()
	}
	var stderr bytes.Buffer
	_, _ = io.Copy(&stderr, io.LimitReader(errR, 64<<10))
	for range copies {
		<-done
	}
	select {
	case e := <-exited:
		if e.Code() == 0 {
			return nil
		}
		return childError(stderr.String(), e)
	case <-ctx.Done():
		_, _ = m.reaper.Signal(pid, syscall.SIGKILL)
		return ctx.Err()
	}
}

// childError rebuilds the error a helper child printed (errdefs.Line).
func childError(stderr string, e Exit) error {
	if err := lineError(stderr); err != nil {
		return err
	}
	return errdefs.Internalf("helper exited with %d: no message", e.Code())
}

// lineError is the error of an errdefs.Line; nil for an empty one.
func lineError(s string) error {
	line := strings.TrimSpace(s)
	if line == "" {
		return nil
	}
	if code, rest, ok := strings.Cut(line, "\t"); ok && errdefs.Code(code).Valid() {
		msg, hint, _ := strings.Cut(rest, "\t")
		return errdefs.WithHint(errdefs.New(errdefs.Code(code), "%s", msg), hint)
	}
	return errdefs.Internalf("helper: %s", line)
}
