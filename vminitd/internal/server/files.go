package server

import (
	"context"
	"path"
	"time"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// copyDialTimeout bounds connecting to the host's copy port, which the host
// listens on before it asks.
const copyDialTimeout = 10 * time.Second

func (s *Server) CopyOut(ctx context.Context, req *agentv1.CopyRequest) (*agentv1.CopyResponse, error) {
	if err := s.copy(ctx, "out", req); err != nil {
		return nil, err
	}
	return &agentv1.CopyResponse{}, nil
}

func (s *Server) CopyIn(ctx context.Context, req *agentv1.CopyRequest) (*agentv1.CopyResponse, error) {
	mode := "in"
	if req.GetContents() {
		mode = "in-contents"
	}
	if err := s.copy(ctx, mode, req); err != nil {
		return nil, err
	}
	return &agentv1.CopyResponse{}, nil
}

// copy runs `vminitd copy <mode> ROOTFS PATH` (archive.Main, chrooted in the
// rootfs) with the host connection as its stdout (out) or stdin (in).
func (s *Server) copy(ctx context.Context, mode string, req *agentv1.CopyRequest) error {
	for _, p := range []string{req.GetRootfs(), req.GetPath()} {
		if !path.IsAbs(p) {
			return errdefs.InvalidArgumentf("path %q must be absolute", p)
		}
	}
	if s.opts.Dial == nil {
		return errdefs.Unsupportedf("copying is not available")
	}
	dctx, cancel := context.WithTimeout(ctx, copyDialTimeout)
	conn, err := s.opts.Dial(dctx, req.GetPort())
	cancel()
	if err != nil {
		return errdefs.New(errdefs.Unavailable, "dial host port %d: %w", req.GetPort(), err)
	}
	defer conn.Close()
	args := []string{"copy", mode, req.GetRootfs(), req.GetPath()}
	if mode == "out" {
		return s.opts.Processes.RunSelf(ctx, args, nil, conn)
	}
	return s.opts.Processes.RunSelf(ctx, args, conn, nil)
}
