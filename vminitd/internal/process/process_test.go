package process

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/sandbox"
)

// hostEnds plays the host: each dialed port gets one end of an in-memory
// connection, the test keeps the other.
type hostEnds struct {
	mu    sync.Mutex
	conns map[uint32]net.Conn
}

func (h *hostEnds) dial(_ context.Context, port uint32) (net.Conn, error) {
	guest, host := net.Pipe()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns[port] = host
	return guest, nil
}

func (h *hostEnds) get(port uint32) net.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[port]
}

// TestMain makes the test binary a shim too: processes start as
// /proc/self/exe shim (sandbox.Main), as they do from vminitd.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.ShimArg {
		os.Exit(sandbox.Main())
	}
	os.Exit(m.Run())
}

// newTestManager runs processes chrooted into "/" (so it needs root), with
// the rootfs preparation and the containers' namespaces left out (they are
// the guest's business: the end-to-end tests cover them).
func newTestManager(t *testing.T) (*Manager, *hostEnds) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot)")
	}
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := NewReaper(log)
	stop := make(chan struct{})
	go r.Run(stop)
	t.Cleanup(func() { close(stop) })
	h := &hostEnds{conns: map[uint32]net.Conn{}}
	m := NewManager(log, r, h.dial)
	m.prepare = func(string, string, uint64) error { return nil }
	m.isolate = false
	return m, h
}

func sh(script string) Spec {
	return Spec{Args: []string{"sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"}, Rootfs: "/"}
}

func TestProcessLifecycle(t *testing.T) {
	m, h := newTestManager(t)
	ctx := context.Background()
	if err := m.Create(ctx, "p1", sh("read line; echo out:$line; echo err >&2; exit 7"), Ports{Stdin: 1, Stdout: 2, Stderr: 3}); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(ctx, "p1", sh("true"), Ports{}); errdefs.CodeOf(err) != errdefs.Exists {
		t.Fatalf("duplicate id: %v", err)
	}
	if _, err := m.Wait(ctx, "p1"); errdefs.CodeOf(err) != errdefs.InvalidState {
		t.Fatalf("wait before start: %v", err)
	}
	pid, err := m.Start("p1")
	if err != nil || pid <= 0 {
		t.Fatalf("start: %d %v", pid, err)
	}
	if _, err := m.Start("p1"); errdefs.CodeOf(err) != errdefs.InvalidState {
		t.Fatalf("second start: %v", err)
	}
	var stdout, stderr bytes.Buffer
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); _, _ = io.Copy(&stdout, h.get(2)) }()
	go func() { defer copies.Done(); _, _ = io.Copy(&stderr, h.get(3)) }()
	if _, err := h.get(1).Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete("p1"); errdefs.CodeOf(err) != errdefs.InvalidState {
		t.Fatalf("delete while running: %v", err)
	}

	// Several waiters all get the status.
	var wg sync.WaitGroup
	codes := make([]int32, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := m.Wait(ctx, "p1")
			if err != nil {
				t.Error(err)
			}
			codes[i] = e.Code()
		}()
	}
	wg.Wait()
	copies.Wait() // Wait returned, so the streams are closed already
	for _, c := range codes {
		if c != 7 {
			t.Fatalf("exit codes %v", codes)
		}
	}
	if stdout.String() != "out:hello\n" || stderr.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	e, err := m.Wait(ctx, "p1") // already exited: at once
	if err != nil || e.Code() != 7 || e.At.IsZero() {
		t.Fatalf("wait after exit: %+v %v", e, err)
	}
	if err := m.Kill("p1", 15); err != nil {
		t.Fatalf("kill after exit: %v", err)
	}
	if err := m.Delete("p1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Kill("p1", 15); errdefs.CodeOf(err) != errdefs.NotFound {
		t.Fatalf("kill unknown: %v", err)
	}
}

func TestKillAndStdinEOF(t *testing.T) {
	m, h := newTestManager(t)
	ctx := context.Background()
	if err := m.Create(ctx, "cat", Spec{Args: []string{"cat"}, Rootfs: "/"}, Ports{Stdin: 1, Stdout: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start("cat"); err != nil {
		t.Fatal(err)
	}
	out := make(chan string)
	go func() { b, _ := io.ReadAll(h.get(2)); out <- string(b) }()
	_, _ = h.get(1).Write([]byte("abc"))
	_ = h.get(1).Close() // host EOF -> cat sees EOF and exits 0
	e, err := m.Wait(ctx, "cat")
	if err != nil || e.Code() != 0 {
		t.Fatalf("cat: %+v %v", e, err)
	}
	if got := <-out; got != "abc" {
		t.Fatalf("cat output %q", got)
	}

	if err := m.Create(ctx, "sleep", sh("exec sleep 30"), Ports{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Kill("sleep", 9); errdefs.CodeOf(err) != errdefs.InvalidState {
		t.Fatalf("kill before start: %v", err)
	}
	if _, err := m.Start("sleep"); err != nil {
		t.Fatal(err)
	}
	if err := m.Kill("sleep", 0); errdefs.CodeOf(err) != errdefs.InvalidArgument {
		t.Fatalf("signal 0: %v", err)
	}
	if err := m.Kill("sleep", 15); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	e, err = m.Wait(wctx, "sleep")
	if err != nil || e.Code() != 128+15 {
		t.Fatalf("killed: %+v %v", e, err)
	}
}

func TestCloseStdinRPC(t *testing.T) {
	m, _ := newTestManager(t)
	ctx := context.Background()
	if err := m.Create(ctx, "cat", Spec{Args: []string{"cat"}, Rootfs: "/"}, Ports{Stdin: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start("cat"); err != nil {
		t.Fatal(err)
	}
	if err := m.CloseStdin("cat"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if e, err := m.Wait(wctx, "cat"); err != nil || e.Code() != 0 {
		t.Fatalf("cat: %+v %v", e, err)
	}
}

func TestStartErrors(t *testing.T) {
	m, _ := newTestManager(t)
	ctx := context.Background()
	tests := []struct {
		name string
		spec Spec
		code errdefs.Code
		msg  string
	}{
		{"not in PATH", Spec{Args: []string{"no-such-tool-xyz"}, Env: []string{"PATH=/bin"}, Rootfs: "/"}, errdefs.NotFound, `executable "no-such-tool-xyz" not found in $PATH`},
		{"missing cwd", Spec{Args: []string{"true"}, Cwd: "/no/such/dir", Rootfs: "/"}, errdefs.NotFound, "working directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Create(ctx, tt.name, tt.spec, Ports{}); err != nil {
				t.Fatal(err)
			}
			_, err := m.Start(tt.name)
			if errdefs.CodeOf(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v (%s)", err, errdefs.CodeOf(err))
			}
			if err := m.Delete(tt.name); err != nil {
				t.Fatalf("delete never-started: %v", err)
			}
		})
	}
}

func TestCreateValidation(t *testing.T) {
	m, _ := newTestManager(t)
	ctx := context.Background()
	tests := []struct {
		name string
		id   string
		spec Spec
		code errdefs.Code
	}{
		{"empty id", "", sh("true"), errdefs.InvalidArgument},
		{"no args", "a", Spec{Rootfs: "/"}, errdefs.InvalidArgument},
		{"relative rootfs", "b", Spec{Args: []string{"true"}, Rootfs: "rootfs"}, errdefs.InvalidArgument},
		{"missing rootfs", "c", Spec{Args: []string{"true"}, Rootfs: "/no/such/rootfs"}, errdefs.NotFound},
		{"relative cwd", "d", Spec{Args: []string{"true"}, Rootfs: "/", Cwd: "tmp"}, errdefs.InvalidArgument},
		{"unknown capability", "e", Spec{Args: []string{"true"}, Rootfs: "/", CapAdd: []string{"NO_SUCH"}}, errdefs.InvalidArgument},
		{"bad tmpfs", "f", Spec{Args: []string{"true"}, Rootfs: "/", Container: Container{Tmpfs: []sandbox.Tmpfs{{Path: "/proc"}}}}, errdefs.InvalidArgument},
		{"bad sysctl", "g", Spec{Args: []string{"true"}, Rootfs: "/", Container: Container{Sysctls: map[string]string{"../x": "1"}}}, errdefs.InvalidArgument},
		{"bad hostname", "h", Spec{Args: []string{"true"}, Rootfs: "/", Container: Container{Hostname: "a b"}}, errdefs.InvalidArgument},
	}
	for _, tt := range tests {
		if err := m.Create(ctx, tt.id, tt.spec, Ports{}); errdefs.CodeOf(err) != tt.code {
			t.Errorf("%s: got %v, want %s", tt.name, err, tt.code)
		}
	}
}

// A daemonised descendant keeping stdout open must not make Wait hang.
func TestWaitWithLingeringDescendant(t *testing.T) {
	m, h := newTestManager(t)
	ctx := context.Background()
	// The descendant outlives the wait by far, so that a loaded machine's
	// delays cannot be mistaken for waiting on it.
	if err := m.Create(ctx, "d", sh("sleep 8 & echo hi"), Ports{Stdout: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start("d"); err != nil {
		t.Fatal(err)
	}
	out := make(chan string)
	go func() { b, _ := io.ReadAll(h.get(2)); out <- string(b) }()
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 6*time.Second)
	defer cancel()
	e, err := m.Wait(wctx, "d")
	if err != nil || e.Code() != 0 {
		t.Fatalf("wait: %+v %v", e, err)
	}
	if got := <-out; got != "hi\n" {
		t.Fatalf("output %q", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("wait took %v", d)
	}
}

func TestTerminal(t *testing.T) {
	m, h := newTestManager(t)
	ctx := context.Background()
	spec := sh(`stty size; tty; read x; stty size; echo "got $x"; exit 4`)
	spec.Terminal, spec.Rows, spec.Cols = true, 30, 100
	if err := m.Create(ctx, "tty", spec, Ports{Stdin: 1, Stdout: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start("tty"); err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 1)
	var buf strings.Builder
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := h.get(2).Read(b)
			buf.Write(b[:n])
			if strings.Contains(buf.String(), "/dev/pts/") {
				select {
				case out <- buf.String():
				default:
				}
			}
			if err != nil {
				close(out)
				return
			}
		}
	}()
	first := <-out
	if !strings.Contains(first, "30 100") {
		t.Fatalf("initial size: %q", first)
	}
	if err := m.Resize("tty", 40, 120); err != nil {
		t.Fatal(err)
	}
	_, _ = h.get(1).Write([]byte("hi\n"))
	e, err := m.Wait(ctx, "tty")
	if err != nil || e.Code() != 4 {
		t.Fatalf("exit: %+v %v", e, err)
	}
	for range out {
	}
	if got := buf.String(); !strings.Contains(got, "40 120") || !strings.Contains(got, "got hi") {
		t.Fatalf("output %q", got)
	}
	if err := m.Resize("tty", 1, 1); err != nil {
		t.Fatalf("resize after exit: %v", err)
	}
}

// The shim's own settings, applied through a real shim on the host: the
// capability sets, the user, limits and no_new_privs the program gets.
func TestShimApplies(t *testing.T) {
	m, h := newTestManager(t)
	ctx := context.Background()
	spec := sh(`grep -E '^(CapBnd|CapEff|NoNewPrivs|Uid)' /proc/self/status | tr -s '\t' ' '; ulimit -n; ulimit -Hn`)
	spec.User = "65534:65534"
	spec.CapDrop = []string{"ALL"}
	spec.CapAdd = []string{"KILL", "NET_RAW"}
	spec.NoNewPrivs = true
	nofile, err := sandbox.ParseRlimit("nofile", 100, 200)
	if err != nil {
		t.Fatal(err)
	}
	spec.Rlimits = []sandbox.Rlimit{nofile}
	if err := m.Create(ctx, "caps", spec, Ports{Stdout: 2}); err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(h.get(2))
		out <- string(b)
	}()
	if _, err := m.Start("caps"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if e, err := m.Wait(wctx, "caps"); err != nil || e.Code() != 0 {
		t.Fatalf("wait: %+v %v", e, err)
	}
	want := "Uid: 65534 65534 65534 65534\nCapEff: 0000000000000000\nCapBnd: 0000000000002020\nNoNewPrivs: 1\n100\n200\n"
	if got := <-out; got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// A program the shim cannot exec fails Start with the shim's error, and
// the process is over (it can be deleted).
func TestShimExecFailure(t *testing.T) {
	m, _ := newTestManager(t)
	dir := t.TempDir()
	script := dir + "/script"
	if err := os.WriteFile(script, []byte("#!/no/such/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(context.Background(), "bad", Spec{Args: []string{script}, Rootfs: "/"}, Ports{}); err != nil {
		t.Fatal(err)
	}
	_, err := m.Start("bad")
	if errdefs.CodeOf(err) != errdefs.NotFound || !strings.Contains(errdefs.HintOf(err), "interpreter") {
		t.Fatalf("got %v (%s, hint %q)", err, errdefs.CodeOf(err), errdefs.HintOf(err))
	}
	if err := m.Delete("bad"); err != nil {
		t.Fatalf("delete: %v", err)
	}
}
