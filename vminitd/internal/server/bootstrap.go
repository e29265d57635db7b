package server

import (
	"bufio"
	"bytes"
	"context"
	"io"

	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Bootstrap serves the bootstrap channel (BootstrapRequest in the proto) on
// conn: it waits for the host's request, does it through the same handlers as
// the RPCs, and writes the events. It returns once the process has exited and
// its `exited` event is written, or after `failed`; the caller then powers off.
// A request that cannot be read (the host went away) is returned as the error.
func (s *Server) Bootstrap(ctx context.Context, conn io.ReadWriter) error {
	req := &agentv1.BootstrapRequest{}
	if err := protodelim.UnmarshalFrom(bufio.NewReader(conn), req); err != nil {
		return errdefs.Unavailablef("reading the bootstrap request: %w", err)
	}
	s.opts.Log.Debug("bootstrap request received", "mounts", len(req.GetMounts()))
	exited, err := s.bootstrap(ctx, req, func(pid int32) error {
		return send(conn, &agentv1.BootstrapEvent{Event: &agentv1.BootstrapEvent_Started{Started: &agentv1.StartProcessResponse{Pid: pid}}})
	})
	if err != nil {
		s.opts.Log.Warn("bootstrap failed", "err", err)
		return send(conn, &agentv1.BootstrapEvent{Event: &agentv1.BootstrapEvent_Failed{Failed: &agentv1.Failure{
			Code:    string(errdefs.CodeOf(err)),
			Message: err.Error(),
			Hint:    errdefs.HintOf(err),
		}}})
	}
	return send(conn, &agentv1.BootstrapEvent{Event: &agentv1.BootstrapEvent_Exited{Exited: exited}})
}

// bootstrap mounts, creates and starts, calls started with the pid, and
// waits for the exit.
func (s *Server) bootstrap(ctx context.Context, req *agentv1.BootstrapRequest, started func(int32) error) (*agentv1.WaitProcessResponse, error) {
	for _, m := range req.GetMounts() {
		if _, err := s.Mount(ctx, m); err != nil {
			return nil, err
		}
	}
	if err := s.containerCgroup(req.GetResources()); err != nil {
		return nil, err
	}
	for _, b := range req.GetBinfmt() {
		if _, err := s.RegisterBinfmt(ctx, b); err != nil {
			return nil, err
		}
	}
	if req.GetProcess() == nil {
		return nil, errdefs.InvalidArgumentf("the bootstrap request has no process")
	}
	id := req.GetProcess().GetId()
	if _, err := s.CreateProcess(ctx, req.GetProcess()); err != nil {
		return nil, err
	}
	res, err := s.StartProcess(ctx, &agentv1.StartProcessRequest{Id: id})
	if err != nil {
		return nil, err
	}
	s.opts.Log.Info("bootstrap process started", "id", id, "pid", res.GetPid())
	if err := started(res.GetPid()); err != nil {
		// The host is gone; the process still runs to its end.
		s.opts.Log.Warn("cannot report the start", "err", err)
	}
	return s.WaitProcess(ctx, &agentv1.WaitProcessRequest{Id: id})
}

// send writes one event in one write (one vsock packet).
func send(w io.Writer, ev *agentv1.BootstrapEvent) error {
	var b bytes.Buffer
	if _, err := protodelim.MarshalTo(&b, proto.Message(ev)); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}
