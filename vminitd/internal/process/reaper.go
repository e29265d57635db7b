package process

import (
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exit is how a process ended.
type Exit struct {
	Status syscall.WaitStatus
	At     time.Time
}

// Code is the exit code, 128+N for signal N.
func (e Exit) Code() int32 { return ExitCode(e.Status) }

// Reaper reaps every child of this process (as PID 1 or a child subreaper,
// that includes orphaned grandchildren). Processes it started are registered
// under their pid, and their status goes to their callback; everything else is
// reaped silently. Nobody else may wait: exec.Cmd.Wait would race with it.
//
// Its lock is held from before a fork until the pid is registered, and
// around each wait4, so a fast-exiting child is never reaped unregistered and
// a pid is never signalled after it was reaped (and perhaps reused).
type Reaper struct {
	log *slog.Logger

	mu      sync.Mutex
	waiters map[int]func(Exit)
}

// NewReaper makes a reaper; call Run to start reaping.
func NewReaper(log *slog.Logger) *Reaper {
	return &Reaper{log: log, waiters: make(map[int]func(Exit))}
}

// BecomeSubreaper makes orphaned descendants reparent to us. As PID 1 we get
// them anyway; outside a VM (development) this keeps the same behaviour.
func BecomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// Run reaps on every SIGCHLD until stop is closed. Start it before starting
// any child.
func (r *Reaper) Run(stop <-chan struct{}) {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, unix.SIGCHLD)
	defer signal.Stop(ch)
	r.reap() // children that exited before we were listening
	for {
		select {
		case <-ch:
			r.reap()
		case <-stop:
			return
		}
	}
}

// reap collects every exited child; SIGCHLDs coalesce, so one signal may
// stand for many exits.
func (r *Reaper) reap() {
	type delivery struct {
		fn   func(Exit)
		exit Exit
	}
	var deliveries []delivery
	r.mu.Lock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: no children; 0: none exited
			break
		}
		exit := Exit{Status: syscall.WaitStatus(ws), At: time.Now()}
		if fn, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			deliveries = append(deliveries, delivery{fn, exit})
		} else if r.log != nil {
			r.log.Debug("reaped orphan", "pid", pid, "status", exit.Code())
		}
	}
	r.mu.Unlock()
	// Callbacks run unlocked: they may take other locks that are held
	// while calling into the reaper (Signal).
	for _, d := range deliveries {
		d.fn(d.exit)
	}
}

// Start runs start (which forks and returns the child's pid) with the lock
// held and registers onExit for the pid it returns.
func (r *Reaper) Start(start func() (int, error), onExit func(Exit)) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err != nil {
		return 0, err
	}
	r.waiters[pid] = onExit
	return pid, nil
}

// Signal sends sig to pid if it is a registered child not yet reaped. It
// reports whether the process was still there.
func (r *Reaper) Signal(pid int, sig syscall.Signal) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.waiters[pid]; !ok {
		return false, nil
	}
	if err := unix.Kill(pid, sig); err != nil {
		if err == unix.ESRCH { // a zombie about to be reaped
			return false, nil
		}
		return true, err
	}
	return true, nil
}

// Pids lists the registered, not yet reaped pids.
func (r *Reaper) Pids() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	pids := make([]int, 0, len(r.waiters))
	for pid := range r.waiters {
		pids = append(pids, pid)
	}
	return pids
}
