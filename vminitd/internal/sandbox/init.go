package sandbox

import (
	"encoding/json"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Init is `run --init`: the container's PID 1 starts the program as its
// child (a shim in Child mode), forwards every signal it gets to it, reaps
// every process orphaned into the container, and exits with the program's
// status once the program has ended (the kernel then ends whatever is left
// in the pid namespace). It never execs; what it returns is its exit code.
func Init(cfg *Config, status *os.File) (int, error) {
	// Before the child exists, so that no signal meant for it is lost.
	signals := make(chan os.Signal, 64)
	signal.Notify(signals)

	child := *cfg
	child.Mode = Child
	configR, configW, err := os.Pipe()
	if err != nil {
		return 0, errdefs.Internalf("pipe: %w", err)
	}
	attr := &syscall.ProcAttr{
		Env:   cfg.Env,
		Files: []uintptr{0, 1, 2, configR.Fd(), status.Fd()},
		// Its own process group, the terminal's foreground one: Ctrl-C
		// reaches the program once, from the terminal, not through us too.
		Sys: &syscall.SysProcAttr{Setpgid: true, Foreground: cfg.Terminal, Ctty: 0},
	}
	// /proc/self/exe is vminitd, on the guest's read-only init filesystem.
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"vminitd", ShimArg}, attr)
	_ = configR.Close()
	if err != nil {
		_ = configW.Close()
		return 0, errdefs.Internalf("start the init's child: %w", err)
	}
	err = json.NewEncoder(configW).Encode(&child)
	_ = configW.Close()
	// The child holds the status pipe until its exec; vminitd must see its
	// end then, not ours.
	_ = status.Close()
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	for sig := range signals {
		s := sig.(syscall.Signal)
		switch s {
		case unix.SIGCHLD:
			if code, done := reap(pid); done {
				return code, nil
			}
		case unix.SIGURG: // the Go runtime's own preemption signal
		default:
			_ = unix.Kill(pid, s)
		}
	}
	return 0, nil
}

// reap collects every child that has exited; done when one of them was pid.
func reap(pid int) (code int, done bool) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if got <= 0 || err != nil {
			return code, done
		}
		if got == pid {
			code, done = exitCodeOf(ws), true
		}
	}
}
