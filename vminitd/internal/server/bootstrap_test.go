package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protodelim"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/process"
)

// runBootstrap sends req over a pipe and returns the events until the
// server's side ends.
func runBootstrap(t *testing.T, req *agentv1.BootstrapRequest) []*agentv1.BootstrapEvent {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dial := func(context.Context, uint32) (net.Conn, error) { return nil, io.EOF }
	srv := New(Options{Log: log, Version: "test", Processes: process.NewManager(log, process.NewReaper(log), dial), CgroupRoot: t.TempDir()})
	host, guest := connPair(t)
	done := make(chan error, 1)
	go func() {
		done <- srv.Bootstrap(context.Background(), guest)
		_ = guest.Close()
	}()
	_ = host.SetDeadline(time.Now().Add(10 * time.Second))
	// One write, as the host does.
	var msg bytes.Buffer
	if _, err := protodelim.MarshalTo(&msg, req); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Write(msg.Bytes()); err != nil {
		t.Fatal(err)
	}
	var events []*agentv1.BootstrapEvent
	r := bufio.NewReader(host)
	for {
		ev := &agentv1.BootstrapEvent{}
		if err := protodelim.UnmarshalFrom(r, ev); err != nil {
			break
		}
		events = append(events, ev)
	}
	if err := <-done; err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	return events
}

// connPair is a connected pair of stream sockets, like the vsock connection
// (net.Pipe would block on the zero-length write of an empty message).
func connPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	host, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	guest, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close(); _ = guest.Close() })
	return host, guest
}

func TestBootstrapReportsFailures(t *testing.T) {
	tests := []struct {
		name string
		req  *agentv1.BootstrapRequest
		code string
	}{
		{"no process", &agentv1.BootstrapRequest{}, "invalidArgument"},
		{"bad mount", &agentv1.BootstrapRequest{Mounts: []*agentv1.MountRequest{{Target: "relative", Fstype: "ext4"}}}, "invalidArgument"},
		{"missing rootfs", &agentv1.BootstrapRequest{Process: &agentv1.CreateProcessRequest{
			Id:   "init",
			Spec: &agentv1.ProcessSpec{Args: []string{"true"}, Rootfs: "/no/such/rootfs"},
		}}, "notFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := runBootstrap(t, tt.req)
			if len(events) != 1 || events[0].GetFailed() == nil {
				t.Fatalf("events = %v, want one failure", events)
			}
			f := events[0].GetFailed()
			if f.GetCode() != tt.code || f.GetMessage() == "" {
				t.Fatalf("failure = %v, want code %s", f, tt.code)
			}
		})
	}
}

func TestBootstrapHostGone(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := New(Options{Log: log, Processes: process.NewManager(log, process.NewReaper(log), nil)})
	host, guest := connPair(t)
	_ = host.Close()
	if err := srv.Bootstrap(context.Background(), guest); err == nil {
		t.Fatal("Bootstrap with the host gone: want an error")
	}
}
