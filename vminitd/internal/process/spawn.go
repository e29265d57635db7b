package process

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/sandbox"
	"github.com/container-vm/container/vminitd/internal/user"
)

// nsOrder is the order a process joins a container's namespaces in: the
// mount namespace last, since it changes the thread's root.
var nsOrder = []string{"cgroup", "ipc", "uts", "pid", "mnt"}

// spawn starts p as a shim (sandbox) with stdio child and returns its pid
// once the shim has exec'd the program, or the error the shim reported. The
// first process of a rootfs starts the container; later ones are born in
// its namespaces. Called with p.mu held.
func (m *Manager) spawn(p *Process, spec Spec, ident user.Identity, argv0 string, child [3]*os.File, groupFD int) (int, error) {
	cfg := sandbox.Config{
		Mode: sandbox.Join, Path: argv0, Args: spec.Args, Env: spec.Env, Cwd: spec.Cwd,
		UID: ident.UID, GID: ident.GID, Groups: ident.Groups,
		Caps: spec.caps, NoNewPrivs: spec.NoNewPrivs, Rlimits: spec.Rlimits, Terminal: spec.Terminal,
	}
	sys := &syscall.SysProcAttr{
		Setsid:  true,
		Setctty: spec.Terminal,
		Ctty:    0, // the child's stdin, the pty, with Setctty
		// Born in the container's cgroup (clone3 CLONE_INTO_CGROUP).
		UseCgroupFD: groupFD >= 0,
		CgroupFD:    groupFD,
	}
	var joinPid int
	creates := false
	switch {
	case !m.isolate:
		sys.Chroot = spec.Rootfs
	default:
		m.ctrMu.Lock()
		running, ok := m.containers[spec.Rootfs]
		m.ctrMu.Unlock()
		if ok {
			joinPid = running
			break
		}
		creates = true
		c := spec.Container
		cfg.Mode, cfg.Rootfs, cfg.Init = sandbox.Create, spec.Rootfs, spec.Init
		cfg.Hostname, cfg.Tmpfs, cfg.Sysctls = c.Hostname, c.Tmpfs, c.Sysctls
		// The cgroup namespace comes later, from the shim: a namespace made
		// at clone is rooted in the parent's cgroup, not the container's.
		sys.Cloneflags = unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
	}

	statusR, statusW, err := os.Pipe()
	if err != nil {
		return 0, errdefs.Internalf("pipe: %w", err)
	}
	configR, configW, err := os.Pipe()
	if err != nil {
		statusR.Close()
		statusW.Close()
		return 0, errdefs.Internalf("pipe: %w", err)
	}
	defer statusR.Close()
	// The config is in the pipe before the shim starts to read it (a
	// goroutine, as a config bigger than the pipe's buffer would block).
	written := make(chan error, 1)
	go func() {
		err := json.NewEncoder(configW).Encode(&cfg)
		configW.Close()
		written <- err
	}()
	attr := &syscall.ProcAttr{
		// Fd() also puts the child ends back into blocking mode.
		Files: []uintptr{child[0].Fd(), child[1].Fd(), child[2].Fd(), configR.Fd(), statusW.Fd()},
		Sys:   sys,
	}
	onExit := p.onExit
	start := func() (int, error) {
		pid, err := syscall.ForkExec("/proc/self/exe", []string{"vminitd", sandbox.ShimArg}, attr)
		if err == nil && creates {
			m.ctrMu.Lock()
			m.containers[spec.Rootfs] = pid
			m.ctrMu.Unlock()
			onExit = func(e Exit) {
				m.ctrMu.Lock()
				if m.containers[spec.Rootfs] == pid {
					delete(m.containers, spec.Rootfs)
				}
				m.ctrMu.Unlock()
				p.onExit(e)
			}
		}
		return pid, err
	}
	var pid int
	if joinPid != 0 {
		pid, err = inNamespacesOf(joinPid, func() (int, error) { return m.reaper.Start(start, func(e Exit) { onExit(e) }) })
	} else {
		pid, err = m.reaper.Start(start, func(e Exit) { onExit(e) })
	}
	configR.Close()
	statusW.Close()
	if err != nil {
		return 0, errdefs.Wrap(errdefs.ResourceExhausted, fmt.Errorf("start %q: %w", spec.Args[0], err))
	}
	if err = <-written; err != nil {
		_, _ = m.reaper.Signal(pid, syscall.SIGKILL)
	}
	// Empty at its end: the program is running.
	status, _ := io.ReadAll(io.LimitReader(statusR, 64<<10))
	if len(status) == 0 && err == nil {
		return pid, nil
	}
	if err == nil {
		err = lineError(string(status))
	}
	// The shim exits right after reporting: the process has ended.
	<-p.exited
	p.pid, p.state = pid, stateExited
	p.conns.closeAll()
	close(p.done)
	return 0, err
}

// inNamespacesOf runs fn on a thread that has joined the namespaces of
// process pid, so that what fn forks is born in them. The thread ends with
// fn: it is never given back to the Go scheduler.
func inNamespacesOf(pid int, fn func() (int, error)) (int, error) {
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// A thread can only change its mount namespace once it no longer
		// shares its root and working directory with the others.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- result{err: errdefs.Internalf("unshare CLONE_FS: %w", err)}
			return
		}
		for _, ns := range nsOrder {
			if err := setns(pid, ns); err != nil {
				done <- result{err: err}
				return
			}
		}
		child, err := fn()
		done <- result{child, err}
	}()
	r := <-done
	return r.pid, r.err
}

func setns(pid int, ns string) error {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errdefs.InvalidStatef("the container has ended: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, 0); err != nil {
		return errdefs.Internalf("join the container's %s namespace: %w", ns, err)
	}
	return nil
}
