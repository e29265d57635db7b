package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/mount"
	"github.com/container-vm/container/vminitd/internal/process"
)

func startServer(t *testing.T, mountFn func(string, string, string, mount.Options) error) agentv1.AgentClient {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dial := func(context.Context, uint32) (net.Conn, error) { return nil, io.EOF }
	srv := New(Options{
		Log:       log,
		Version:   "test",
		Processes: process.NewManager(log, process.NewReaper(log), dial),
		Mount:     mountFn,
	})
	sock := filepath.Join(t.TempDir(), "agent.sock")
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
	return agentv1.NewAgentClient(conn)
}

// expectError checks the status code, the message and the trailing metadata.
func expectError(t *testing.T, err error, trailer metadata.MD, code codes.Code, name string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
	if st.Message() == "" {
		t.Errorf("empty message")
	}
	if got := trailer.Get(errdefs.CodeMetadataKey); len(got) != 1 || got[0] != name {
		t.Errorf("%s trailer = %v, want %s", errdefs.CodeMetadataKey, got, name)
	}
}

func TestErrorsAndPanics(t *testing.T) {
	panicky := func(string, string, string, mount.Options) error { panic("boom") }
	c := startServer(t, panicky)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ping, err := c.Ping(ctx, &agentv1.PingRequest{})
	if err != nil || ping.GetApiVersion() != "v1" || ping.GetAgentVersion() != "test" || ping.GetUptimeNs() == 0 {
		t.Fatalf("ping: %v %v", ping, err)
	}

	var tr metadata.MD
	_, err = c.Mount(ctx, &agentv1.MountRequest{Target: "relative", Fstype: "ext4"}, grpc.Trailer(&tr))
	expectError(t, err, tr, codes.InvalidArgument, "invalidArgument")

	tr = nil
	_, err = c.KillProcess(ctx, &agentv1.KillProcessRequest{Id: "nope", Signal: 9}, grpc.Trailer(&tr))
	expectError(t, err, tr, codes.NotFound, "notFound")

	tr = nil
	_, err = c.CreateProcess(ctx, &agentv1.CreateProcessRequest{Id: "x"}, grpc.Trailer(&tr))
	expectError(t, err, tr, codes.InvalidArgument, "invalidArgument")

	tr = nil
	_, err = c.DeleteProcess(ctx, &agentv1.DeleteProcessRequest{Id: "x"}, grpc.Trailer(&tr))
	expectError(t, err, tr, codes.NotFound, "notFound")

	tr = nil
	_, err = c.Shutdown(ctx, &agentv1.ShutdownRequest{}, grpc.Trailer(&tr))
	expectError(t, err, tr, codes.Unimplemented, "unsupported")

	// A panicking handler becomes an internal error...
	tr = nil
	_, err = c.Mount(ctx, &agentv1.MountRequest{Target: filepath.Join(t.TempDir(), "m"), Fstype: "tmpfs"}, grpc.Trailer(&tr))
	expectError(t, err, tr, codes.Internal, "internal")
	// ...and the agent keeps serving.
	if _, err := c.Ping(ctx, &agentv1.PingRequest{}); err != nil {
		t.Fatalf("ping after panic: %v", err)
	}
}

func TestHintTrailer(t *testing.T) {
	c := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tr metadata.MD
	_, err := c.CreateProcess(ctx, &agentv1.CreateProcessRequest{
		Id:   "p",
		Spec: &agentv1.ProcessSpec{Args: []string{"true"}, Rootfs: "/no/such/rootfs"},
	}, grpc.Trailer(&tr))
	expectError(t, err, tr, codes.NotFound, "notFound")
	if got := tr.Get(errdefs.HintMetadataKey); len(got) != 1 || got[0] == "" {
		t.Fatalf("hint trailer = %v", got)
	}
}

func TestResidentBytes(t *testing.T) {
	rss, err := residentBytes("/proc/self/status")
	if err != nil || rss < 1<<20 || rss > 1<<30 {
		t.Fatalf("rss %d: %v", rss, err)
	}
	if _, err := residentBytes("/proc/self/no-such-file"); err == nil {
		t.Fatal("a missing file read")
	}
}
