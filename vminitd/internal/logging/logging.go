// Package logging sets up vminitd's structured logs: JSON lines, written
// asynchronously so a slow console never stalls a request.
package logging

import (
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// item is a queued line, or a flush marker (done != nil).
type item struct {
	line []byte
	done chan struct{}
}

// Writer queues lines and writes them from one goroutine. When the queue is
// full, lines are dropped (and counted) rather than blocking the caller.
type Writer struct {
	out      io.Writer
	fallback io.Writer
	queue    chan item
	dropped  atomic.Uint64
}

// writeTimeout bounds one line's write to a connection: a host end that
// stops reading must not silence the log.
const writeTimeout = 2 * time.Second

// NewWriter starts a Writer over out. When a write to out fails (or, for a
// connection, takes longer than writeTimeout), that line and every later one
// go to fallback instead, if there is one: the console keeps what a broken
// log connection would lose, the last words before a power-off included.
func NewWriter(out, fallback io.Writer) *Writer {
	w := &Writer{out: out, fallback: fallback, queue: make(chan item, 1024)}
	go w.run()
	return w
}

func (w *Writer) run() {
	for it := range w.queue {
		if it.done != nil {
			close(it.done)
			continue
		}
		if d, ok := w.out.(interface{ SetWriteDeadline(time.Time) error }); ok && w.fallback != nil {
			_ = d.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		if _, err := w.out.Write(it.line); err != nil && w.fallback != nil {
			w.out, w.fallback = w.fallback, nil
			_, _ = w.out.Write([]byte(`{"level":"WARN","msg":"the log connection failed; logging to the console","component":"vminitd"}` + "\n"))
			_, _ = w.out.Write(it.line)
		}
	}
}

// Write queues p, which slog hands over as one whole line.
func (w *Writer) Write(p []byte) (int, error) {
	line := make([]byte, len(p))
	copy(line, p)
	select {
	case w.queue <- item{line: line}:
	default:
		w.dropped.Add(1)
	}
	return len(p), nil
}

// Dropped is the number of lines dropped because the queue was full.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Flush waits, at most timeout, until everything queued so far is written.
func (w *Writer) Flush(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	done := make(chan struct{})
	select {
	case w.queue <- item{done: done}:
	case <-t.C:
		return
	}
	select {
	case <-done:
	case <-t.C:
	}
}

// OpenConsole returns the console, or os.Stderr when there is none (vminitd
// run outside a VM, for development).
func OpenConsole() io.Writer {
	f, err := os.OpenFile("/dev/console", os.O_WRONLY|os.O_APPEND|syscall.O_NOCTTY, 0)
	if err != nil {
		return os.Stderr
	}
	return f
}

// New makes the JSON logger writing to w.
func New(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With("component", "vminitd")
}
