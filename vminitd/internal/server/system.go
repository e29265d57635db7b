package server

import (
	"context"
	"runtime"
	"time"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/binfmt"
	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/files"
	"github.com/container-vm/container/vminitd/internal/system"
)

// freezeTimeout bounds Freeze and Thaw when the caller set no deadline.
const freezeTimeout = 10 * time.Second

func (s *Server) Sysctl(_ context.Context, req *agentv1.SysctlRequest) (*agentv1.SysctlResponse, error) {
	v, err := system.Sysctl(s.opts.ProcSys, req.GetName(), req.Value)
	if err != nil {
		return nil, err
	}
	if req.Value != nil {
		s.opts.Log.Info("sysctl set", "name", req.GetName(), "value", v)
	}
	return &agentv1.SysctlResponse{Value: v}, nil
}

func (s *Server) SetTime(_ context.Context, req *agentv1.SetTimeRequest) (*agentv1.SetTimeResponse, error) {
	if req.GetTimeNs() <= 0 {
		return nil, errdefs.InvalidArgumentf("time_ns %d is not after the Unix epoch", req.GetTimeNs())
	}
	at := time.Unix(0, req.GetTimeNs())
	before := time.Now()
	if err := s.opts.SetClock(at); err != nil {
		return nil, err
	}
	s.opts.Log.Debug("clock set", "time", at, "step", at.Sub(before).String())
	return &agentv1.SetTimeResponse{}, nil
}

func (s *Server) Getenv(_ context.Context, req *agentv1.GetenvRequest) (*agentv1.GetenvResponse, error) {
	v, ok, err := system.Getenv(req.GetKey())
	if err != nil {
		return nil, err
	}
	return &agentv1.GetenvResponse{Value: v, Present: ok}, nil
}

func (s *Server) Setenv(_ context.Context, req *agentv1.SetenvRequest) (*agentv1.SetenvResponse, error) {
	if err := system.Setenv(req.GetKey(), req.GetValue()); err != nil {
		return nil, err
	}
	return &agentv1.SetenvResponse{}, nil
}

func (s *Server) Freeze(ctx context.Context, _ *agentv1.FreezeRequest) (*agentv1.FreezeResponse, error) {
	if err := s.setFrozen(ctx, true); err != nil {
		return nil, err
	}
	return &agentv1.FreezeResponse{}, nil
}

func (s *Server) Thaw(ctx context.Context, _ *agentv1.ThawRequest) (*agentv1.ThawResponse, error) {
	if err := s.setFrozen(ctx, false); err != nil {
		return nil, err
	}
	return &agentv1.ThawResponse{}, nil
}

func (s *Server) setFrozen(ctx context.Context, frozen bool) error {
	g := s.opts.Processes.Cgroup()
	if g == nil {
		return errdefs.InvalidStatef("the container has not started")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, freezeTimeout)
		defer cancel()
	}
	op, set := "thaw", g.Thaw
	if frozen {
		op, set = "freeze", g.Freeze
	}
	if err := set(ctx); err != nil {
		code := errdefs.Internal
		if ctx.Err() != nil {
			code = errdefs.CodeOf(ctx.Err()) // timeout, cancelled
		}
		return errdefs.New(code, "%s the container's cgroup: %w", op, err)
	}
	s.opts.Log.Info("container "+op+"d", "cgroup", g.Path)
	return nil
}

func (s *Server) Trim(_ context.Context, req *agentv1.TrimRequest) (*agentv1.TrimResponse, error) {
	n, err := files.Trim(req.GetPath(), req.GetMinLength())
	if err != nil {
		return nil, err
	}
	s.opts.Log.Info("trimmed", "path", req.GetPath(), "bytes", n)
	return &agentv1.TrimResponse{TrimmedBytes: n}, nil
}

func (s *Server) RegisterBinfmt(_ context.Context, req *agentv1.RegisterBinfmtRequest) (*agentv1.RegisterBinfmtResponse, error) {
	var rule binfmt.Rule
	var err error
	switch e := req.GetEmulator().(type) {
	case *agentv1.RegisterBinfmtRequest_ImageArch:
		var needed bool
		rule, needed, err = binfmt.ForArch(runtime.GOARCH, e.ImageArch, req.GetInterpreter())
		if err == nil && !needed {
			return &agentv1.RegisterBinfmtResponse{}, nil
		}
	case *agentv1.RegisterBinfmtRequest_Rosetta:
		if !e.Rosetta {
			return nil, errdefs.InvalidArgumentf("rosetta must be true when given")
		}
		rule, err = binfmt.Rosetta(req.GetInterpreter())
	default:
		return nil, errdefs.InvalidArgumentf("an emulator is required: image_arch or rosetta")
	}
	if err != nil {
		return nil, err
	}
	entry, err := s.opts.RegisterBinfmt(rule)
	if err != nil {
		return nil, err
	}
	s.opts.Log.Info("binfmt_misc rule registered", "name", rule.Name, "interpreter", rule.Interpreter, "flags", rule.Flags)
	return &agentv1.RegisterBinfmtResponse{Registered: true, Name: rule.Name, Entry: entry}, nil
}

// registerBinfmt registers r with the kernel and reads its entry back.
func registerBinfmt(r binfmt.Rule) (string, error) {
	if err := binfmt.Register(r); err != nil {
		return "", err
	}
	return binfmt.Entry(r.Name)
}
