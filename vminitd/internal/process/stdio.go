package process

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Dialer connects to a port on the host.
type Dialer func(ctx context.Context, port uint32) (net.Conn, error)

// drainGrace is how long an output pipe may stay idle after the process
// exited before we stop reading it: only a descendant that kept the pipe open
// (a daemon) can still write then, and Wait must not hang on it forever.
const drainGrace = 500 * time.Millisecond

// stdioConns are the host connections of one process, nil for port 0.
type stdioConns struct {
	stdin, stdout, stderr net.Conn
}

func (s *stdioConns) closeAll() {
	for _, c := range []net.Conn{s.stdin, s.stdout, s.stderr} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// dialStdio dials the non-zero ports concurrently.
func dialStdio(ctx context.Context, dial Dialer, stdin, stdout, stderr uint32) (*stdioConns, error) {
	ports := []uint32{stdin, stdout, stderr}
	names := []string{"stdin", "stdout", "stderr"}
	conns := make([]net.Conn, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, port := range ports {
		if port == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = dial(ctx, port)
		}()
	}
	wg.Wait()
	s := &stdioConns{stdin: conns[0], stdout: conns[1], stderr: conns[2]}
	for i, err := range errs {
		if err != nil {
			s.closeAll()
			return nil, errdefs.WithHint(
				errdefs.New(errdefs.Unavailable, "dial host %s port %d: %w", names[i], ports[i], err),
				"the host must listen on the stdio ports before CreateProcess")
		}
	}
	return s, nil
}

// outputCopier copies a process's output pipe to its host connection.
type outputCopier struct {
	r      *os.File
	conn   net.Conn
	exited atomic.Bool
	done   chan struct{}
}

func newOutputCopier(r *os.File, conn net.Conn) *outputCopier {
	c := &outputCopier{r: r, conn: conn, done: make(chan struct{})}
	go c.run()
	return c
}

func (c *outputCopier) run() {
	defer close(c.done)
	defer c.r.Close()
	buf := make([]byte, 32*1024)
	connOK := true
	for {
		n, err := c.r.Read(buf)
		if n > 0 {
			if connOK {
				if _, werr := c.conn.Write(buf[:n]); werr != nil {
					// The host went away: keep draining so the process
					// never blocks on a full pipe.
					connOK = false
				}
			}
			if c.exited.Load() {
				_ = c.r.SetReadDeadline(time.Now().Add(drainGrace))
			}
		}
		if err != nil { // EOF, or the post-exit idle deadline
			return
		}
	}
}

// processExited starts the idle deadline: from now on the copier stops after
// drainGrace without data.
func (c *outputCopier) processExited() {
	c.exited.Store(true)
	_ = c.r.SetReadDeadline(time.Now().Add(drainGrace))
}

// stdinCopier copies the host's stdin connection into the process's stdin
// pipe, and closes the pipe on EOF so the process sees its end of input.
type stdinCopier struct {
	conn net.Conn
	w    io.WriteCloser
	once sync.Once
}

func newStdinCopier(conn net.Conn, w io.WriteCloser) *stdinCopier {
	c := &stdinCopier{conn: conn, w: w}
	go func() {
		_, _ = io.Copy(c.w, c.conn)
		c.close()
	}()
	return c
}

// close ends stdin now: the process reads EOF, the host connection closes.
func (c *stdinCopier) close() {
	c.once.Do(func() {
		_ = c.w.Close()
		_ = c.conn.Close()
	})
}

// nullFile opens /dev/null for a stream with no host port.
func nullFile(write bool) (*os.File, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_WRONLY
	}
	f, err := os.OpenFile(os.DevNull, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	return f, nil
}
