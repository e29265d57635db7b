package logging

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestJSONLines(t *testing.T) {
	var buf syncBuffer
	w := NewWriter(&buf, nil)
	log := New(w, false)
	log.Info("hello", "n", 1)
	log.Debug("hidden")
	w.Flush(time.Second)
	lines := bytes.Split(bytes.TrimSpace([]byte(buf.String())), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("want 1 line, got %q", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal(lines[0], &rec); err != nil {
		t.Fatal(err)
	}
	if rec["msg"] != "hello" || rec["component"] != "vminitd" || rec["level"] != "INFO" || rec["n"] != 1.0 {
		t.Fatalf("record: %v", rec)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestFallbackAfterAFailedWrite(t *testing.T) {
	var console bytes.Buffer
	w := NewWriter(failingWriter{}, &console)
	_, _ = w.Write([]byte("first\n"))
	_, _ = w.Write([]byte("second\n"))
	w.Flush(time.Second)
	if got := console.String(); !strings.Contains(got, "the log connection failed") || !strings.HasSuffix(got, "first\nsecond\n") {
		t.Fatalf("console got %q", got)
	}
}
