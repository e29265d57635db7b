// Package server is the gRPC face of vminitd: the Agent service of
// api/v1/agent.proto, served on vsock.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/binfmt"
	"github.com/container-vm/container/vminitd/internal/cgroup"
	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/mount"
	"github.com/container-vm/container/vminitd/internal/process"
	"github.com/container-vm/container/vminitd/internal/relay"
	"github.com/container-vm/container/vminitd/internal/sandbox"
	"github.com/container-vm/container/vminitd/internal/system"
)

// APIVersion is the contract version this agent implements.
const APIVersion = "v1"

// Options configure a Server.
type Options struct {
	Log       *slog.Logger
	Version   string
	Processes *process.Manager
	// Shutdown is called (in its own goroutine) after the Shutdown RPC has
	// replied; it powers the VM off and does not return.
	Shutdown func()
	// Mount mounts a filesystem; mount.Mount unless a test replaces it.
	Mount func(source, target, fstype string, o mount.Options) error
	// CgroupRoot is where the container's cgroup is made; cgroup.Root
	// unless a test replaces it.
	CgroupRoot string
	// Dial connects to a host vsock port (copies stream over one).
	Dial func(ctx context.Context, port uint32) (net.Conn, error)
	// Listen listens on a guest vsock port (relays the host dials).
	Listen func(port uint32) (net.Listener, error)
	// ProcSys is where sysctls are; system.ProcSys unless a test replaces it.
	ProcSys string
	// SetClock sets the wall clock; system.SetClock unless a test replaces it.
	SetClock func(time.Time) error
	// RegisterBinfmt registers a rule and returns the kernel's entry for it;
	// the real binfmt_misc unless a test replaces it.
	RegisterBinfmt func(binfmt.Rule) (string, error)
	// SysBlock is where block devices' counters are; /sys/class/block
	// unless a test replaces it.
	SysBlock string
}

// Server implements agentv1.AgentServer.
type Server struct {
	agentv1.UnimplementedAgentServer
	opts   Options
	grpc   *grpc.Server
	relays *relay.Manager

	devMu sync.Mutex
	// devices are the block devices mounted through Mount ("vdb"): the
	// container's disks, whose I/O Stats reports.
	devices []string
}

// New makes the server and its gRPC server with our interceptor.
func New(opts Options) *Server {
	if opts.Mount == nil {
		opts.Mount = mount.Mount
	}
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = cgroup.Root
	}
	if opts.ProcSys == "" {
		opts.ProcSys = system.ProcSys
	}
	if opts.SetClock == nil {
		opts.SetClock = system.SetClock
	}
	if opts.RegisterBinfmt == nil {
		opts.RegisterBinfmt = registerBinfmt
	}
	if opts.SysBlock == "" {
		opts.SysBlock = "/sys/class/block"
	}
	s := &Server{opts: opts, relays: relay.NewManager(opts.Log, opts.dialHost, opts.listen)}
	s.grpc = grpc.NewServer(grpc.UnaryInterceptor(unaryInterceptor(opts.Log)))
	agentv1.RegisterAgentServer(s.grpc, s)
	return s
}

// Serve serves on l until Stop.
func (s *Server) Serve(l net.Listener) error {
	err := s.grpc.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop lets in-flight calls finish (at most timeout), then closes everything.
func (s *Server) Stop(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		s.grpc.Stop()
	}
}

// uptime is the time since boot, counting suspend (CLOCK_BOOTTIME).
func uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func (s *Server) Ping(_ context.Context, req *agentv1.PingRequest) (*agentv1.PingResponse, error) {
	res := &agentv1.PingResponse{
		ApiVersion:   APIVersion,
		AgentVersion: s.opts.Version,
		UptimeNs:     uint64(uptime()),
	}
	if req.GetMemory() {
		rss, err := residentBytes("/proc/self/status")
		if err != nil {
			return nil, errdefs.Internalf("read vminitd's memory: %w", err)
		}
		res.AgentRssBytes = rss
	}
	return res, nil
}

// residentBytes is the VmRSS line of a /proc/PID/status file.
func residentBytes(status string) (uint64, error) {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("%s has no VmRSS line", status)
}

func (s *Server) Mount(_ context.Context, req *agentv1.MountRequest) (*agentv1.MountResponse, error) {
	target := req.GetTarget()
	if target == "" || !path.IsAbs(target) {
		return nil, errdefs.InvalidArgumentf("mount target %q must be an absolute path", target)
	}
	target = path.Clean(target)
	if target == "/" {
		return nil, errdefs.InvalidArgumentf("cannot mount over /")
	}
	opts := mount.ParseOptions(req.GetOptions())
	if req.GetFstype() == "" && opts.Flags&unix.MS_BIND == 0 && opts.Flags&unix.MS_REMOUNT == 0 {
		return nil, errdefs.InvalidArgumentf("fstype is required (except for bind mounts and remounts)")
	}
	if err := mkdirAll(target); err != nil {
		return nil, err
	}
	if err := s.opts.Mount(req.GetSource(), target, req.GetFstype(), opts); err != nil {
		return nil, mountError(err)
	}
	s.opts.Log.Info("mounted", "source", req.GetSource(), "target", target, "fstype", req.GetFstype(), "options", req.GetOptions())
	if dev, ok := strings.CutPrefix(req.GetSource(), "/dev/"); ok && !strings.Contains(dev, "/") {
		s.devMu.Lock()
		s.devices = append(s.devices, dev)
		s.devMu.Unlock()
	}
	return &agentv1.MountResponse{}, nil
}

func (s *Server) CreateProcess(ctx context.Context, req *agentv1.CreateProcessRequest) (*agentv1.CreateProcessResponse, error) {
	spec := req.GetSpec()
	if spec == nil {
		return nil, errdefs.InvalidArgumentf("spec is required")
	}
	ps, err := processSpec(spec)
	if err != nil {
		return nil, err
	}
	err = s.opts.Processes.Create(ctx, req.GetId(), ps, process.Ports{Stdin: req.GetStdinPort(), Stdout: req.GetStdoutPort(), Stderr: req.GetStderrPort()})
	if err != nil {
		return nil, err
	}
	return &agentv1.CreateProcessResponse{}, nil
}

func (s *Server) StartProcess(_ context.Context, req *agentv1.StartProcessRequest) (*agentv1.StartProcessResponse, error) {
	pid, err := s.opts.Processes.Start(req.GetId())
	if err != nil {
		return nil, err
	}
	return &agentv1.StartProcessResponse{Pid: int32(pid)}, nil
}

func (s *Server) WaitProcess(ctx context.Context, req *agentv1.WaitProcessRequest) (*agentv1.WaitProcessResponse, error) {
	exit, err := s.opts.Processes.Wait(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &agentv1.WaitProcessResponse{ExitCode: exit.Code(), ExitedAtNs: exit.At.UnixNano()}, nil
}

func (s *Server) KillProcess(_ context.Context, req *agentv1.KillProcessRequest) (*agentv1.KillProcessResponse, error) {
	if err := s.opts.Processes.Kill(req.GetId(), int(req.GetSignal())); err != nil {
		return nil, err
	}
	return &agentv1.KillProcessResponse{}, nil
}

func (s *Server) ResizeProcess(_ context.Context, req *agentv1.ResizeProcessRequest) (*agentv1.ResizeProcessResponse, error) {
	if err := s.opts.Processes.Resize(req.GetId(), clampSize(req.GetRows()), clampSize(req.GetCols())); err != nil {
		return nil, err
	}
	return &agentv1.ResizeProcessResponse{}, nil
}

// clampSize fits a terminal dimension into the kernel's 16 bits.
func clampSize(n uint32) uint16 {
	if n > 0xffff {
		return 0xffff
	}
	return uint16(n)
}

func (s *Server) CloseProcessStdin(_ context.Context, req *agentv1.CloseProcessStdinRequest) (*agentv1.CloseProcessStdinResponse, error) {
	if err := s.opts.Processes.CloseStdin(req.GetId()); err != nil {
		return nil, err
	}
	return &agentv1.CloseProcessStdinResponse{}, nil
}

func (s *Server) DeleteProcess(_ context.Context, req *agentv1.DeleteProcessRequest) (*agentv1.DeleteProcessResponse, error) {
	if err := s.opts.Processes.Delete(req.GetId()); err != nil {
		return nil, err
	}
	return &agentv1.DeleteProcessResponse{}, nil
}

// containerCgroup makes the container's cgroup with its limits and has every
// process of the container start in it.
func (s *Server) containerCgroup(r *agentv1.Resources) error {
	g, err := cgroup.Create(s.opts.CgroupRoot, "container", cgroup.Limits{
		CPUs:        r.GetCpus(),
		MemoryBytes: int64(r.GetMemoryBytes()),
		Pids:        r.GetPidsMax(),
	})
	if err != nil {
		return errdefs.Internalf("container cgroup: %w", err)
	}
	if err := s.opts.Processes.UseCgroup(g); err != nil {
		return errdefs.Wrap(errdefs.Internal, err)
	}
	return nil
}

func (s *Server) Stats(context.Context, *agentv1.StatsRequest) (*agentv1.StatsResponse, error) {
	g := s.opts.Processes.Cgroup()
	if g == nil {
		return nil, errdefs.InvalidStatef("the container has not started")
	}
	st, err := g.Stats()
	if err != nil {
		return nil, errdefs.Internalf("read the container's cgroup: %w", err)
	}
	s.devMu.Lock()
	devices := append([]string(nil), s.devices...)
	s.devMu.Unlock()
	read, written, err := blockIO(s.opts.SysBlock, devices)
	if err != nil {
		return nil, errdefs.Internalf("read the container's block I/O: %w", err)
	}
	return &agentv1.StatsResponse{
		CpuUsageUsec:       st.CPUUsageUs,
		CpuUserUsec:        st.CPUUserUs,
		CpuSystemUsec:      st.CPUSystemUs,
		MemoryCurrentBytes: st.MemoryCurrent,
		MemoryMaxBytes:     st.MemoryMax,
		MemoryAnonBytes:    st.MemoryAnon,
		MemoryFileBytes:    st.MemoryFile,
		PidsCurrent:        st.PidsCurrent,
		PidsMax:            st.PidsMax,
		UptimeNs:           uint64(uptime()),
		IoReadBytes:        read,
		IoWriteBytes:       written,
	}, nil
}

func (s *Server) Shutdown(context.Context, *agentv1.ShutdownRequest) (*agentv1.ShutdownResponse, error) {
	if s.opts.Shutdown == nil {
		return nil, errdefs.Unsupportedf("shutdown is not available")
	}
	s.opts.Log.Info("shutdown requested")
	// The reply goes out first; Shutdown stops the gRPC server gracefully,
	// which waits for this call to finish writing it.
	go s.opts.Shutdown()
	return &agentv1.ShutdownResponse{}, nil
}

// processSpec translates the wire spec; process.ValidateSpec checks the rest.
func processSpec(spec *agentv1.ProcessSpec) (process.Spec, error) {
	ps := process.Spec{
		Args:   spec.GetArgs(),
		Env:    spec.GetEnv(),
		Cwd:    spec.GetCwd(),
		Rootfs: spec.GetRootfs(),

		ReadonlyRootfs: spec.GetReadonlyRootfs(),
		User:           spec.GetUser(),
		Terminal:       spec.GetTerminal(),
		Rows:           clampSize(spec.GetRows()),
		Cols:           clampSize(spec.GetCols()),

		CapAdd:     spec.GetCapAdd(),
		CapDrop:    spec.GetCapDrop(),
		NoNewPrivs: spec.GetNoNewPrivileges(),
		Init:       spec.GetInit(),
	}
	for _, r := range spec.GetRlimits() {
		l, err := sandbox.ParseRlimit(r.GetType(), r.GetSoft(), r.GetHard())
		if err != nil {
			return process.Spec{}, err
		}
		ps.Rlimits = append(ps.Rlimits, l)
	}
	if sb := spec.GetSandbox(); sb != nil {
		ps.Container = process.Container{Hostname: sb.GetHostname(), ShmSize: sb.GetShmSizeBytes(), Sysctls: sb.GetSysctls()}
		for _, t := range sb.GetTmpfs() {
			ps.Container.Tmpfs = append(ps.Container.Tmpfs, sandbox.Tmpfs{Path: t.GetPath(), Options: t.GetOptions()})
		}
	}
	return ps, nil
}
