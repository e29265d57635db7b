package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/binfmt"
	"github.com/container-vm/container/vminitd/internal/cgroup"
	"github.com/container-vm/container/vminitd/internal/process"
)

// The filesystem, system, network and relay RPCs over gRPC: their wire
// mapping and typed errors. Nothing here changes the test machine: paths
// are in temporary directories, /proc/sys is a fake one, the clock and
// binfmt_misc are stubs, vsock is unix sockets. internal/netconf tests
// netlink in a network namespace of its own; here only its refusals.

type fixture struct {
	c       agentv1.AgentClient
	procs   *process.Manager
	dir     string
	clock   []time.Time
	binfmts []binfmt.Rule
}

func startDomains(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dial := func(ctx context.Context, port uint32) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(f.dir, "host-"+strconv.Itoa(int(port))))
	}
	f.procs = process.NewManager(log, process.NewReaper(log), dial)
	procSys := filepath.Join(f.dir, "sys")
	if err := os.MkdirAll(filepath.Join(procSys, "vm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(procSys, "vm", "swappiness"), []byte("60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := New(Options{
		Log:       log,
		Version:   "test",
		Processes: f.procs,
		Dial:      dial,
		Listen: func(port uint32) (net.Listener, error) {
			return net.Listen("unix", filepath.Join(f.dir, "vsock-"+strconv.Itoa(int(port))))
		},
		ProcSys:  procSys,
		SetClock: func(at time.Time) error { f.clock = append(f.clock, at); return nil },
		RegisterBinfmt: func(r binfmt.Rule) (string, error) {
			f.binfmts = append(f.binfmts, r)
			return "enabled\ninterpreter " + r.Interpreter + "\nflags: " + r.Flags + "\n", nil
		},
	})
	sock := filepath.Join(f.dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(time.Second) })
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	f.c = agentv1.NewAgentClient(conn)
	return f
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// refused checks that call fails with the code named, then that the agent
// still answers.
func (f *fixture) refused(t *testing.T, what string, code codes.Code, name string, call func(ctx context.Context, opt grpc.CallOption) error) {
	t.Helper()
	ctx := ctxFor(t)
	var tr metadata.MD
	err := call(ctx, grpc.Trailer(&tr))
	t.Run(what, func(t *testing.T) { expectError(t, err, tr, code, name) })
	if _, err := f.c.Ping(ctx, &agentv1.PingRequest{}); err != nil {
		t.Fatalf("ping after %s: %v", what, err)
	}
}

func TestFilesystemRPCs(t *testing.T) {
	f := startDomains(t)
	ctx := ctxFor(t)
	root := filepath.Join(f.dir, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Mkdir(ctx, &agentv1.MkdirRequest{Rootfs: root, Path: "/a/b", Mode: 0o700, Parents: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.WriteFile(ctx, &agentv1.WriteFileRequest{Rootfs: root, Path: "/a/b/f", Data: []byte("hello"), Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	st, err := f.c.Stat(ctx, &agentv1.StatRequest{Rootfs: root, Path: "/a/b/f"})
	if err != nil || st.GetType() != agentv1.FileType_FILE_TYPE_REGULAR || st.GetSize() != 5 || st.GetMode() != 0o600 || st.GetUid() != uint32(os.Getuid()) {
		t.Fatalf("stat: %v %v", st, err)
	}
	st, err = f.c.Stat(ctx, &agentv1.StatRequest{Rootfs: root, Path: "/escape"})
	if err != nil || st.GetType() != agentv1.FileType_FILE_TYPE_SYMLINK || st.GetLinkTarget() != "/" {
		t.Fatalf("stat link: %v %v", st, err)
	}
	// Unconfined: a guest path.
	st, err = f.c.Stat(ctx, &agentv1.StatRequest{Path: filepath.Join(root, "a")})
	if err != nil || st.GetType() != agentv1.FileType_FILE_TYPE_DIRECTORY || st.GetMode() != 0o755 {
		t.Fatalf("stat guest path: %v %v", st, err)
	}

	ia, nf := codes.InvalidArgument, codes.NotFound
	f.refused(t, "write through an escaping link", ia, "invalidArgument", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.WriteFile(ctx, &agentv1.WriteFileRequest{Rootfs: root, Path: "/escape/tmp/x"}, o)
		return err
	})
	f.refused(t, "mkdir above the root", ia, "invalidArgument", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.Mkdir(ctx, &agentv1.MkdirRequest{Rootfs: root, Path: "/../x"}, o)
		return err
	})
	f.refused(t, "relative path", ia, "invalidArgument", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.Stat(ctx, &agentv1.StatRequest{Path: "etc"}, o)
		return err
	})
	f.refused(t, "missing file", nf, "notFound", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.Stat(ctx, &agentv1.StatRequest{Rootfs: root, Path: "/nope"}, o)
		return err
	})
	f.refused(t, "missing rootfs", nf, "notFound", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.Stat(ctx, &agentv1.StatRequest{Rootfs: filepath.Join(f.dir, "none"), Path: "/"}, o)
		return err
	})
	f.refused(t, "unmount a plain directory", ia, "invalidArgument", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.Unmount(ctx, &agentv1.UnmountRequest{Rootfs: root, Path: "/a"}, o)
		return err
	})
	f.refused(t, "trim a relative path", ia, "invalidArgument", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.Trim(ctx, &agentv1.TrimRequest{Path: "x"}, o)
		return err
	})
}

func TestSystemRPCs(t *testing.T) {
	f := startDomains(t)
	ctx := ctxFor(t)
	res, err := f.c.Sysctl(ctx, &agentv1.SysctlRequest{Name: "vm.swappiness", Value: proto.String("10")})
	if err != nil || res.GetValue() != "10" {
		t.Fatalf("sysctl: %v %v", res, err)
	}
	if res, err = f.c.Sysctl(ctx, &agentv1.SysctlRequest{Name: "vm/swappiness"}); err != nil || res.GetValue() != "10" {
		t.Fatalf("sysctl get: %v %v", res, err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	if _, err := f.c.SetTime(ctx, &agentv1.SetTimeRequest{TimeNs: at.UnixNano()}); err != nil || len(f.clock) != 1 || !f.clock[0].Equal(at) {
		t.Fatalf("settime: %v %v", f.clock, err)
	}
	key := "VMINITD_DOMAINS_TEST"
	t.Setenv(key, "")
	os.Unsetenv(key)
	if g, err := f.c.Getenv(ctx, &agentv1.GetenvRequest{Key: key}); err != nil || g.GetPresent() {
		t.Fatalf("getenv unset: %v %v", g, err)
	}
	if _, err := f.c.Setenv(ctx, &agentv1.SetenvRequest{Key: key, Value: "v=1"}); err != nil {
		t.Fatal(err)
	}
	if g, err := f.c.Getenv(ctx, &agentv1.GetenvRequest{Key: key}); err != nil || !g.GetPresent() || g.GetValue() != "v=1" {
		t.Fatalf("getenv: %v %v", g, err)
	}
	b, err := f.c.RegisterBinfmt(ctx, &agentv1.RegisterBinfmtRequest{Emulator: &agentv1.RegisterBinfmtRequest_Rosetta{Rosetta: true}, Interpreter: "/run/rosetta/rosetta"})
	if err != nil || !b.GetRegistered() || b.GetName() != "rosetta" || len(f.binfmts) != 1 || f.binfmts[0].Flags != "CF" {
		t.Fatalf("binfmt: %v %v %v", b, err, f.binfmts)
	}
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	b, err = f.c.RegisterBinfmt(ctx, &agentv1.RegisterBinfmtRequest{Emulator: &agentv1.RegisterBinfmtRequest_ImageArch{ImageArch: other}, Interpreter: "/run/qemu/qemu"})
	if err != nil || !b.GetRegistered() || f.binfmts[1].Flags != "PF" || b.GetEntry() == "" {
		t.Fatalf("binfmt qemu: %v %v", b, err)
	}
	b, err = f.c.RegisterBinfmt(ctx, &agentv1.RegisterBinfmtRequest{Emulator: &agentv1.RegisterBinfmtRequest_ImageArch{ImageArch: runtime.GOARCH}, Interpreter: "/run/qemu/qemu"})
	if err != nil || b.GetRegistered() || len(f.binfmts) != 2 {
		t.Fatalf("binfmt, same arch: %v %v", b, err)
	}

	ia := codes.InvalidArgument
	for name, call := range map[string]func(context.Context, grpc.CallOption) error{
		"malformed sysctl": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.Sysctl(ctx, &agentv1.SysctlRequest{Name: "../../etc/passwd"}, o)
			return err
		},
		"time before the epoch": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.SetTime(ctx, &agentv1.SetTimeRequest{TimeNs: 0}, o)
			return err
		},
		"malformed env key": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.Setenv(ctx, &agentv1.SetenvRequest{Key: "A=B"}, o)
			return err
		},
		"no emulator": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.RegisterBinfmt(ctx, &agentv1.RegisterBinfmtRequest{Interpreter: "/x"}, o)
			return err
		},
		"relative interpreter": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.RegisterBinfmt(ctx, &agentv1.RegisterBinfmtRequest{Emulator: &agentv1.RegisterBinfmtRequest_Rosetta{Rosetta: true}, Interpreter: "rosetta"}, o)
			return err
		},
	} {
		f.refused(t, name, ia, "invalidArgument", call)
	}
	f.refused(t, "unknown sysctl", codes.NotFound, "notFound", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.Sysctl(ctx, &agentv1.SysctlRequest{Name: "vm.nope"}, o)
		return err
	})
	f.refused(t, "unknown architecture", codes.Unimplemented, "unsupported", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.RegisterBinfmt(ctx, &agentv1.RegisterBinfmtRequest{Emulator: &agentv1.RegisterBinfmtRequest_ImageArch{ImageArch: "mips"}, Interpreter: "/x"}, o)
		return err
	})
	f.refused(t, "freeze before the container", codes.FailedPrecondition, "invalidState", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.Freeze(ctx, &agentv1.FreezeRequest{}, o)
		return err
	})
}

// A fake cgroup directory: frozen at once, but never thawed, so Thaw waits
// until the call's deadline.
func TestFreezeRPC(t *testing.T) {
	f := startDomains(t)
	g := &cgroup.Group{Path: t.TempDir()}
	if err := f.procs.UseCgroup(g); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(g.Path, "cgroup.events"), []byte("populated 1\nfrozen 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	if _, err := f.c.Freeze(ctx, &agentv1.FreezeRequest{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(g.Path, "cgroup.freeze")); string(b) != "1" {
		t.Fatalf("cgroup.freeze = %q", b)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	// The deadline ends the call on both sides: no trailer to insist on.
	if _, err := f.c.Thaw(short, &agentv1.ThawRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("thaw: %v", err)
	}
	if _, err := f.c.Ping(ctx, &agentv1.PingRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestNetworkRPCs(t *testing.T) {
	f := startDomains(t)
	ctx := ctxFor(t)
	root := filepath.Join(f.dir, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.WriteResolvConf(ctx, &agentv1.WriteResolvConfRequest{Rootfs: root, Nameservers: []string{"192.168.64.1"}, Search: []string{"local"}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/resolv.conf")); string(b) != "nameserver 192.168.64.1\nsearch local\n" {
		t.Fatalf("resolv.conf %q", b)
	}
	hosts := []*agentv1.HostsEntry{{Ip: "127.0.0.1", Hostnames: []string{"localhost"}}, {Ip: "192.168.64.5", Hostnames: []string{"box"}}}
	if _, err := f.c.WriteHosts(ctx, &agentv1.WriteHostsRequest{Rootfs: root, Entries: hosts}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); string(b) != "127.0.0.1\tlocalhost\n192.168.64.5\tbox\n" {
		t.Fatalf("hosts %q", b)
	}

	// Refusals only: nothing here may change the test machine's network.
	ia := codes.InvalidArgument
	for name, call := range map[string]func(context.Context, grpc.CallOption) error{
		"malformed link name": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.LinkUp(ctx, &agentv1.LinkUpRequest{Link: ""}, o)
			return err
		},
		"malformed cidr": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.AddAddress(ctx, &agentv1.AddAddressRequest{Link: "lo", Cidr: "10.99.0.1"}, o)
			return err
		},
		"malformed route": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.AddRoute(ctx, &agentv1.AddRouteRequest{Destination: "10.0.0.0/33", Link: "lo"}, o)
			return err
		},
		"route with neither gateway nor link": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.AddRoute(ctx, &agentv1.AddRouteRequest{Destination: "default"}, o)
			return err
		},
		"resolv.conf without a rootfs": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.WriteResolvConf(ctx, &agentv1.WriteResolvConfRequest{Nameservers: []string{"1.1.1.1"}}, o)
			return err
		},
		"malformed nameserver": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.WriteResolvConf(ctx, &agentv1.WriteResolvConfRequest{Rootfs: root, Nameservers: []string{"1.1.1.1 x"}}, o)
			return err
		},
		"malformed hostname": func(ctx context.Context, o grpc.CallOption) error {
			_, err := f.c.WriteHosts(ctx, &agentv1.WriteHostsRequest{Rootfs: root, Entries: []*agentv1.HostsEntry{{Ip: "10.0.0.1", Hostnames: []string{"a\n10.0.0.2 b"}}}}, o)
			return err
		},
	} {
		f.refused(t, name, ia, "invalidArgument", call)
	}
	f.refused(t, "unknown link", codes.NotFound, "notFound", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.AddAddress(ctx, &agentv1.AddAddressRequest{Link: "nosuchlink0", Cidr: "10.99.0.1/32"}, o)
		return err
	})
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); string(b) != "127.0.0.1\tlocalhost\n192.168.64.5\tbox\n" {
		t.Fatalf("a refused request changed hosts: %q", b)
	}
}

func TestRelayRPCs(t *testing.T) {
	f := startDomains(t)
	ctx := ctxFor(t)
	host, err := net.Listen("unix", filepath.Join(f.dir, "host-5000"))
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		for {
			c, err := host.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }() // echo
		}
	}()
	sock := filepath.Join(f.dir, "relay.sock")
	if _, err := f.c.RelayUnix(ctx, &agentv1.RelayUnixRequest{Id: "a", Path: sock, Port: 5000, Direction: agentv1.RelayDirection_RELAY_DIRECTION_GUEST_LISTEN}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.RelayUnix(ctx, &agentv1.RelayUnixRequest{Id: "b", Path: sock, Port: 6000, Direction: agentv1.RelayDirection_RELAY_DIRECTION_GUEST_DIAL}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", filepath.Join(f.dir, "vsock-6000"))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("round trip")); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.UnixConn).CloseWrite()
	if b, err := io.ReadAll(c); err != nil || string(b) != "round trip" {
		t.Fatalf("%q %v", b, err)
	}
	c.Close()
	for _, id := range []string{"a", "b"} {
		if _, err := f.c.StopRelay(ctx, &agentv1.StopRelayRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
	}
	f.refused(t, "stop an unknown relay", codes.NotFound, "notFound", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.StopRelay(ctx, &agentv1.StopRelayRequest{Id: "a"}, o)
		return err
	})
	f.refused(t, "relay without a direction", codes.InvalidArgument, "invalidArgument", func(ctx context.Context, o grpc.CallOption) error {
		_, err := f.c.RelayUnix(ctx, &agentv1.RelayUnixRequest{Id: "c", Path: sock, Port: 1}, o)
		return err
	})
}
