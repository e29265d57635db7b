package relay

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Unix sockets in a temporary directory stand in for vsock: the host's port
// N is host-N, the guest's vsock-N.
func testManager(t *testing.T) (*Manager, string) {
	t.Helper()
	dir := t.TempDir()
	dial := func(ctx context.Context, port uint32) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(dir, "host-"+strconv.Itoa(int(port))))
	}
	listen := func(port uint32) (net.Listener, error) {
		return net.Listen("unix", filepath.Join(dir, "vsock-"+strconv.Itoa(int(port))))
	}
	return NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)), dial, listen), dir
}

// hostEcho answers each line with "pong:" and the line, then closes.
func hostEcho(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				_, _ = c.Write(append([]byte("pong:"), b...))
			}()
		}
	}()
}

func roundTrip(t *testing.T, path, msg string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// A relay that refuses the connection may have closed it already.
	if _, err := c.Write([]byte(msg)); err != nil {
		return ""
	}
	_ = c.(*net.UnixConn).CloseWrite()
	b, _ := io.ReadAll(bufio.NewReader(c))
	return string(b)
}

func expectCode(t *testing.T, err error, code errdefs.Code) {
	t.Helper()
	if !errdefs.Is(err, code) {
		t.Fatalf("got %v (%s), want %s", err, errdefs.CodeOf(err), code)
	}
}

// Both directions chained, as the end-to-end test does through a VM: the
// host dials guest port 6000, the guest dials the socket, which the other
// relay serves by dialing host port 5000.
func TestBothDirections(t *testing.T) {
	m, dir := testManager(t)
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	hostEcho(t, filepath.Join(dir, "host-5000"))
	if err := m.Start(Spec{ID: "ssh", Rootfs: root, Path: "/run/agent.sock", Port: 5000, Direction: GuestListen, Mode: 0o660}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(Spec{ID: "docker", Rootfs: root, Path: "/run/agent.sock", Port: 6000, Direction: GuestDial}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, "run/agent.sock"))
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v %v", st, err)
	}
	for i := range 3 {
		msg := "ping " + strconv.Itoa(i)
		if got := roundTrip(t, filepath.Join(dir, "vsock-6000"), msg); got != "pong:"+msg {
			t.Fatalf("got %q", got)
		}
	}

	expectCode(t, m.Start(Spec{ID: "ssh", Path: "/x", Port: 1, Direction: GuestListen}), errdefs.Exists)
	expectCode(t, m.Start(Spec{ID: "again", Rootfs: root, Path: "/run/agent.sock", Port: 5000, Direction: GuestListen}), errdefs.Exists)
	expectCode(t, m.Start(Spec{ID: "port", Rootfs: root, Path: "/run/x.sock", Port: 6000, Direction: GuestDial}), errdefs.Exists)

	if err := m.Stop("ssh"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "run/agent.sock")); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	if err := m.Stop("docker"); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("unix", filepath.Join(dir, "vsock-6000")); err == nil {
		t.Fatal("still listening after StopRelay")
	}
	expectCode(t, m.Stop("docker"), errdefs.NotFound)
}

func TestStopEndsLiveConnections(t *testing.T) {
	m, dir := testManager(t)
	l, err := net.Listen("unix", filepath.Join(dir, "host-7000"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := m.Start(Spec{ID: "r", Path: filepath.Join(dir, "guest.sock"), Port: 7000, Direction: GuestListen}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", filepath.Join(dir, "guest.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	host, err := l.Accept() // the relay dialed the host
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	done := make(chan error, 1)
	go func() { done <- m.Stop("r") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hung on a live connection")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("guest side after stop: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	m, dir := testManager(t)
	root := filepath.Join(dir, "rootfs")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Spec{
		{Path: "/a", Port: 1, Direction: GuestListen},
		{ID: "x", Port: 1, Direction: GuestListen},
		{ID: "x", Path: "/a", Direction: GuestListen},
		{ID: "x", Path: "/a", Port: 1},
		{ID: "x", Path: "relative", Port: 1, Direction: GuestDial},
		{ID: "x", Rootfs: root, Path: "/../a", Port: 1, Direction: GuestDial},
		{ID: "x", Rootfs: root, Path: "/out/agent.sock", Port: 1, Direction: GuestListen},
	} {
		expectCode(t, m.Start(s), errdefs.InvalidArgument)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("made outside the rootfs: %v", entries)
	}
	expectCode(t, m.Start(Spec{ID: "x", Rootfs: root, Path: "/missing/a.sock", Port: 1, Direction: GuestListen}), errdefs.NotFound)

	// A socket outside, reached through an absolute link: never dialed.
	outsideSock, err := net.Listen("unix", filepath.Join(outside, "daemon.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer outsideSock.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := outsideSock.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	if err := os.Symlink(filepath.Join(outside, "daemon.sock"), filepath.Join(root, "daemon.sock")); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(Spec{ID: "out", Rootfs: root, Path: "/daemon.sock", Port: 8000, Direction: GuestDial}); err != nil {
		t.Fatal(err)
	}
	defer m.Stop("out")
	if got := roundTrip(t, filepath.Join(dir, "vsock-8000"), "hello"); got != "" {
		t.Fatalf("got %q", got)
	}
	select {
	case <-accepted:
		t.Fatal("the relay dialed a socket outside the rootfs")
	case <-time.After(100 * time.Millisecond):
	}
}
