// Package process runs the processes the host asks for: validation, stdio
// wiring over vsock, starting them chrooted in a container rootfs, and
// delivering their exit status from the reaper to every waiter.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/capabilities"
	"github.com/container-vm/container/vminitd/internal/cgroup"
	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/mount"
	"github.com/container-vm/container/vminitd/internal/sandbox"
	"github.com/container-vm/container/vminitd/internal/user"
)

// Spec is what to run.
type Spec struct {
	Args   []string
	Env    []string
	Cwd    string
	Rootfs string
	// ReadonlyRootfs remounts the rootfs read-only after it is prepared.
	ReadonlyRootfs bool
	// User is Docker's -u spec, resolved in the rootfs (user.Resolve).
	User string
	// Terminal gives the process a pty as stdin, stdout and stderr (its
	// controlling terminal); the output goes to the stdout port.
	Terminal bool
	// Rows and Cols are the terminal's initial size (0: unset).
	Rows, Cols uint16

	// CapAdd and CapDrop change Docker's default capabilities
	// (capabilities.Compute).
	CapAdd, CapDrop []string
	NoNewPrivs      bool
	Rlimits         []sandbox.Rlimit
	// Init runs --init's init as the container's PID 1; only for the
	// process that starts the container.
	Init bool
	// Container holds the container's own settings, read from the process
	// that starts it (the first one started in its rootfs).
	Container Container

	// caps is CapAdd and CapDrop applied, by ValidateSpec.
	caps []capabilities.Cap
}

// Container is what a container's first process sets up for all of them.
type Container struct {
	Hostname string
	Tmpfs    []sandbox.Tmpfs
	// ShmSize is /dev/shm's size in bytes; 0: DefaultShmSize.
	ShmSize uint64
	Sysctls map[string]string
}

// Ports are the host vsock ports of a process's streams; 0 = /dev/null.
type Ports struct {
	Stdin, Stdout, Stderr uint32
}

type state int

const (
	stateCreating state = iota // dialing stdio
	stateCreated               // registered, not started
	stateRunning               // started; also exited but not yet drained
	stateExited                // exited and its streams drained and closed
)

// Process is one managed process.
type Process struct {
	id   string
	spec Spec

	mu     sync.Mutex
	state  state
	pid    int
	conns  *stdioConns
	stdin  *stdinCopier
	pty    *os.File // the terminal's master, with Spec.Terminal
	exit   Exit
	exited chan struct{} // closed when the reaper delivers the status
	done   chan struct{} // closed once exited and output drained
}

// Manager holds the processes by id.
type Manager struct {
	log    *slog.Logger
	reaper *Reaper
	dial   Dialer
	// prepare readies a rootfs before its first process (RootfsPreparer),
	// showing it the container's cgroup when there is one.
	prepare func(rootfs, cgroupPath string, shmSize uint64) error
	// cgroup holds the container's processes; nil until UseCgroup. Guarded
	// by cgMu, not mu: Start reads it while holding a process's lock.
	cgMu     sync.Mutex
	cgroup   *cgroup.Group
	cgroupFD int

	// isolate starts a rootfs's first process in a container of its own
	// (sandbox.Create) and later ones inside it; without it (tests on the
	// host) every process is only chrooted into its rootfs.
	isolate bool
	ctrMu   sync.Mutex
	// containers are the running containers' first processes, by rootfs.
	containers map[string]int

	mu    sync.Mutex
	procs map[string]*Process
}

// NewManager makes a Manager starting processes through reaper and dialing
// stdio with dial.
func NewManager(log *slog.Logger, reaper *Reaper, dial Dialer) *Manager {
	return &Manager{
		log:      log,
		reaper:   reaper,
		dial:     dial,
		prepare:  NewRootfsPreparer(log).Prepare,
		cgroupFD:   -1,
		isolate:    true,
		containers: make(map[string]int),
		procs:      make(map[string]*Process),
	}
}

// dialTimeout bounds connecting the stdio streams; the host listens before it
// asks, so this only matters when something is broken.
const dialTimeout = 10 * time.Second

// UseCgroup makes every process started from now on start in g (its limits,
// its statistics) and shows g to the container as its /sys/fs/cgroup.
func (m *Manager) UseCgroup(g *cgroup.Group) error {
	fd, err := g.OpenFD()
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", g.Path, err)
	}
	m.cgMu.Lock()
	defer m.cgMu.Unlock()
	if m.cgroupFD >= 0 {
		_ = unix.Close(m.cgroupFD)
	}
	m.cgroup, m.cgroupFD = g, fd
	return nil
}

// Cgroup is the container's cgroup, nil before UseCgroup.
func (m *Manager) Cgroup() *cgroup.Group {
	m.cgMu.Lock()
	defer m.cgMu.Unlock()
	return m.cgroup
}

// ValidateSpec checks a spec without touching anything but the rootfs's
// existence, and fills defaults (cwd "/").
func ValidateSpec(spec *Spec) error {
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return errdefs.InvalidArgumentf("args must not be empty")
	}
	if spec.Rootfs == "" || !path.IsAbs(spec.Rootfs) {
		return errdefs.InvalidArgumentf("rootfs %q must be an absolute path", spec.Rootfs)
	}
	spec.Rootfs = path.Clean(spec.Rootfs)
	if spec.Cwd == "" {
		spec.Cwd = "/"
	}
	if !path.IsAbs(spec.Cwd) {
		return errdefs.InvalidArgumentf("cwd %q must be an absolute path", spec.Cwd)
	}
	spec.Cwd = path.Clean(spec.Cwd)
	caps, err := capabilities.Compute(spec.CapAdd, spec.CapDrop)
	if err != nil {
		return err
	}
	spec.caps = caps
	c := &spec.Container
	if c.Hostname != "" {
		if err := sandbox.ValidateHostname(c.Hostname); err != nil {
			return err
		}
	}
	for i := range c.Tmpfs {
		if err := sandbox.ValidateTmpfs(&c.Tmpfs[i]); err != nil {
			return err
		}
	}
	for name, value := range c.Sysctls {
		if _, err := sandbox.SysctlPath(name); err != nil {
			return err
		}
		if strings.ContainsAny(value, "\x00\n") {
			return errdefs.InvalidArgumentf("invalid value for sysctl %s", name)
		}
	}
	fi, err := os.Stat(spec.Rootfs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errdefs.WithHint(errdefs.NotFoundf("rootfs %q does not exist", spec.Rootfs), "mount the rootfs first")
	case err != nil:
		return errdefs.Internalf("rootfs %q: %w", spec.Rootfs, err)
	case !fi.IsDir():
		return errdefs.InvalidArgumentf("rootfs %q is not a directory", spec.Rootfs)
	}
	return nil
}

// Create registers a process and connects its stdio streams to the host.
func (m *Manager) Create(ctx context.Context, id string, spec Spec, ports Ports) error {
	if id == "" {
		return errdefs.InvalidArgumentf("process id must not be empty")
	}
	spec.Args = append([]string(nil), spec.Args...)
	spec.Env = append([]string(nil), spec.Env...)
	if err := ValidateSpec(&spec); err != nil {
		return err
	}
	p := &Process{id: id, spec: spec, state: stateCreating, exited: make(chan struct{}), done: make(chan struct{})}
	m.mu.Lock()
	if _, taken := m.procs[id]; taken {
		m.mu.Unlock()
		return errdefs.Existsf("process %q already exists", id)
	}
	m.procs[id] = p
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conns, err := dialStdio(ctx, m.dial, ports.Stdin, ports.Stdout, ports.Stderr)
	if err != nil {
		m.mu.Lock()
		delete(m.procs, id)
		m.mu.Unlock()
		return err
	}
	p.mu.Lock()
	p.conns = conns
	p.state = stateCreated
	p.mu.Unlock()
	return nil
}

func (m *Manager) get(id string) (*Process, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.procs[id]
	if !ok {
		return nil, errdefs.NotFoundf("process %q not found", id)
	}
	return p, nil
}

// Start runs a created process and returns its pid.
func (m *Manager) Start(id string) (int, error) {
	p, err := m.get(id)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case stateCreating:
		return 0, errdefs.InvalidStatef("process %q is still being created", id)
	case stateRunning, stateExited:
		return 0, errdefs.InvalidStatef("process %q was already started", id)
	}
	spec := p.spec
	m.cgMu.Lock()
	group, groupFD := m.cgroup, m.cgroupFD
	m.cgMu.Unlock()
	groupPath := ""
	if group != nil {
		groupPath = group.Path
	}
	if err := m.prepare(spec.Rootfs, groupPath, spec.Container.ShmSize); err != nil {
		return 0, errdefs.Wrap(errdefs.Internal, err)
	}
	if spec.ReadonlyRootfs {
		if err := mount.RemountReadOnly(spec.Rootfs); err != nil {
			return 0, errdefs.Internalf("make rootfs %q read-only: %w", spec.Rootfs, err)
		}
	}
	if err := CheckDir(spec.Rootfs, spec.Cwd); err != nil {
		return 0, err
	}
	ident, err := user.Resolve(spec.Rootfs, spec.User)
	if err != nil {
		return 0, err
	}
	spec.Env = user.DefaultEnv(spec.Env, ident, spec.Terminal)
	argv0, err := LookPath(spec.Rootfs, spec.Cwd, spec.Args[0], spec.Env)
	if err != nil {
		return 0, err
	}

	// The three child ends, and what we keep: the stdin pipe's write end and
	// the output pipes' read ends.
	var child [3]*os.File
	var stdoutR, stderrR *os.File
	var stdinW io.WriteCloser
	closeAll := func(fs ...*os.File) {
		for _, f := range fs {
			if f != nil {
				_ = f.Close()
			}
		}
	}
	fail := func(err error) (int, error) {
		closeAll(child[:]...)
		closeAll(stdoutR, stderrR)
		if stdinW != nil {
			_ = stdinW.Close()
		}
		return 0, err
	}
	if spec.Terminal {
		master, slave, err := openPty(spec.Rootfs, spec.Rows, spec.Cols)
		if err != nil {
			return fail(errdefs.Internalf("terminal: %w", err))
		}
		child = [3]*os.File{slave, slave, slave}
		stdoutR = master
		if p.conns.stdin != nil {
			stdinW = keepOpen{master}
		}
		p.pty = master
	} else if p.conns.stdin != nil {
		var w *os.File
		if child[0], w, err = os.Pipe(); err != nil {
			return fail(errdefs.Internalf("stdin pipe: %w", err))
		}
		stdinW = w
	} else if child[0], err = nullFile(false); err != nil {
		return fail(errdefs.Wrap(errdefs.Internal, err))
	}
	for i, conn := range []struct {
		c net.Conn
		r **os.File
	}{{p.conns.stdout, &stdoutR}, {p.conns.stderr, &stderrR}} {
		if spec.Terminal {
			break
		}
		if conn.c != nil {
			if *conn.r, child[i+1], err = os.Pipe(); err != nil {
				return fail(errdefs.Internalf("output pipe: %w", err))
			}
		} else if child[i+1], err = nullFile(true); err != nil {
			return fail(errdefs.Wrap(errdefs.Internal, err))
		}
	}

	pid, err := m.spawn(p, spec, ident, argv0, child, groupFD)
	closeAll(child[:]...)
	child = [3]*os.File{}
	if err != nil {
		p.pty = nil
		return fail(err)
	}

	p.pid = pid
	p.state = stateRunning
	var outputs []*outputCopier
	if stdoutR != nil {
		outputs = append(outputs, newOutputCopier(stdoutR, p.conns.stdout))
	}
	if stderrR != nil {
		outputs = append(outputs, newOutputCopier(stderrR, p.conns.stderr))
	}
	if stdinW != nil {
		p.stdin = newStdinCopier(p.conns.stdin, stdinW)
	}
	go p.finish(outputs)
	m.log.Debug("process started", "id", id, "pid", pid, "args", spec.Args)
	return pid, nil
}

// onExit is the reaper's delivery of the status.
// p.exit is written once, before exited is closed, and read only after.
func (p *Process) onExit(e Exit) {
	p.exit = e
	close(p.exited)
}

// finish waits for the exit, lets the output drain, closes every stream, and
// only then marks the process exited: a waiter has every byte before it sees
// the status.
func (p *Process) finish(outputs []*outputCopier) {
	<-p.exited
	for _, c := range outputs {
		c.processExited()
	}
	for _, c := range outputs {
		<-c.done
	}
	p.mu.Lock()
	if p.stdin != nil {
		p.stdin.close()
	}
	p.conns.closeAll()
	p.state = stateExited
	p.mu.Unlock()
	close(p.done)
}

// Wait blocks until the process has exited and its streams are closed.
func (m *Manager) Wait(ctx context.Context, id string) (Exit, error) {
	p, err := m.get(id)
	if err != nil {
		return Exit{}, err
	}
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if st < stateRunning {
		return Exit{}, errdefs.InvalidStatef("process %q has not been started", id)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return Exit{}, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit, nil
}

// Kill sends sig to the process; a process that has exited is left alone.
func (m *Manager) Kill(id string, sig int) error {
	if sig <= 0 || sig > 64 {
		return errdefs.InvalidArgumentf("signal %d is not a valid signal number (1-64)", sig)
	}
	p, err := m.get(id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	st, pid := p.state, p.pid
	p.mu.Unlock()
	if st < stateRunning {
		return errdefs.InvalidStatef("process %q has not been started", id)
	}
	if st == stateExited {
		return nil
	}
	// The reaper signals only a pid it has not reaped yet, so a recycled
	// pid is never hit.
	if _, err := m.reaper.Signal(pid, syscall.Signal(sig)); err != nil {
		return errdefs.Internalf("signal %d to process %q: %w", sig, id, err)
	}
	return nil
}

// Resize sets the window size of a process's terminal.
func (m *Manager) Resize(id string, rows, cols uint16) error {
	p, err := m.get(id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case !p.spec.Terminal:
		return errdefs.InvalidStatef("process %q has no terminal", id)
	case p.state == stateExited:
		return nil
	case p.pty == nil:
		// Not started yet: the size applies at start.
		p.spec.Rows, p.spec.Cols = rows, cols
		return nil
	}
	if err := resizePty(p.pty, rows, cols); err != nil {
		return errdefs.Internalf("resize the terminal of %q: %w", id, err)
	}
	return nil
}

// CloseStdin closes the process's stdin now (it reads EOF). Closing the host
// end of the stdin connection does the same after delivering what was sent.
func (m *Manager) CloseStdin(id string) error {
	p, err := m.get(id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.state < stateCreated:
		return errdefs.InvalidStatef("process %q is still being created", id)
	case p.stdin != nil:
		p.stdin.close()
	case p.conns.stdin != nil:
		// Not started yet: the process will start with stdin at EOF.
		_ = p.conns.stdin.Close()
		p.conns.stdin = nil
	}
	return nil
}

// Delete forgets a process that has exited (or was never started).
func (m *Manager) Delete(id string) error {
	// Lock order: the manager, then the process.
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.procs[id]
	if !ok {
		return errdefs.NotFoundf("process %q not found", id)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case stateCreating:
		return errdefs.InvalidStatef("process %q is still being created", id)
	case stateRunning:
		return errdefs.WithHint(errdefs.InvalidStatef("process %q is running", id), "kill it and wait for it first")
	case stateCreated:
		p.conns.closeAll()
	}
	delete(m.procs, id)
	return nil
}

// KillAll sends SIGKILL to every running process (at shutdown).
func (m *Manager) KillAll() {
	pids := m.reaper.Pids()
	sort.Ints(pids)
	for _, pid := range pids {
		_, _ = m.reaper.Signal(pid, syscall.SIGKILL)
	}
}

// WaitAll waits, at most until ctx ends, for every started process to finish.
func (m *Manager) WaitAll(ctx context.Context) {
	m.mu.Lock()
	var dones []chan struct{}
	for _, p := range m.procs {
		p.mu.Lock()
		if p.state == stateRunning {
			dones = append(dones, p.done)
		}
		p.mu.Unlock()
	}
	m.mu.Unlock()
	for _, d := range dones {
		select {
		case <-d:
		case <-ctx.Done():
			return
		}
	}
}
