// vminitd is the guest's PID 1: it mounts the basics, then serves the Agent
// gRPC service (api/v1/agent.proto) on vsock port 1024 so the host can mount
// the container's rootfs and run its processes. With vminitd.bootstrap=<port>
// it also fetches the container's first process from the host at once and
// powers the VM off when that process ends. It reaps every orphan, and powers
// the VM off when asked.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"
	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/archive"
	"github.com/container-vm/container/vminitd/internal/boot"
	"github.com/container-vm/container/vminitd/internal/cgroup"
	"github.com/container-vm/container/vminitd/internal/config"
	"github.com/container-vm/container/vminitd/internal/logging"
	"github.com/container-vm/container/vminitd/internal/mount"
	"github.com/container-vm/container/vminitd/internal/netconf"
	"github.com/container-vm/container/vminitd/internal/process"
	"github.com/container-vm/container/vminitd/internal/sandbox"
	"github.com/container-vm/container/vminitd/internal/server"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

const (
	// AgentPort is the vsock port the Agent service listens on.
	AgentPort = 1024
	// hostCID is the host's vsock context id.
	hostCID = unix.VMADDR_CID_HOST
	// idleAfter is when the agent is done starting, even under TCG.
	idleAfter = 3 * time.Second
)

func main() {
	// A child vminitd starts for `container cp` and `export` (archive.Main).
	if len(os.Args) > 1 && os.Args[1] == "copy" {
		os.Exit(archive.Main(os.Args[2:]))
	}
	// Every container process starts as a shim (sandbox.Main).
	if len(os.Args) > 1 && os.Args[1] == sandbox.ShimArg {
		os.Exit(sandbox.Main())
	}
	pid1 := os.Getpid() == 1

	// A write to a closed connection must return EPIPE, not kill us. Notify
	// (not Ignore): an ignored signal stays ignored across exec, a handled
	// one is reset to the default, which is what our children must get.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	var bootErr error
	if pid1 {
		bootErr = boot.Mount()
	}
	cfg, warnings, cfgErr := config.Load()

	// Listen before anything else: the host is waiting to connect, and this
	// is on the container cold-start path. Binding to CID_ANY needs no
	// /dev/vsock lookup.
	listener, listenErr := vsock.ListenContextID(unix.VMADDR_CID_ANY, AgentPort, nil)
	var bootstrapConn <-chan net.Conn
	if cfg.BootstrapPort != 0 {
		bootstrapConn = dialBootstrap(cfg.BootstrapPort)
	}

	logs, log := setupLogging(cfg, pid1)
	// Once the cold start is over, what starting took goes back to the
	// guest: the start-up garbage (gRPC and protobuf registration, the first
	// connections) and the executable's pages that only starting touched.
	// An idle agent holds what it uses.
	time.AfterFunc(idleAfter, func() {
		debug.FreeOSMemory()
		if err := boot.ReleaseImagePages(); err != nil {
			log.Warn("release the executable's pages", "err", err)
		}
	})
	log.Info("vminitd starting", "version", version, "arch", runtime.GOARCH, "pid", os.Getpid(), "uptime_ms", uptimeMs(), "config", cfg)
	for _, w := range warnings {
		log.Warn("kernel command line", "warning", w)
	}
	if cfgErr != nil {
		log.Warn("cannot read the kernel command line; using defaults", "err", cfgErr)
	}
	if bootErr != nil {
		log.Error("boot mounts", "err", bootErr)
	}
	if cfg.Debug {
		logMounts(log)
	}
	if err := boot.SetHostname(cfg.Hostname); err != nil {
		log.Warn("set hostname", "hostname", cfg.Hostname, "err", err)
	}
	if pid1 {
		if err := ownCgroup(); err != nil {
			log.Warn("vminitd's own cgroup", "err", err)
		}
		// The container shares the guest's network: 127.0.0.1 must work in it.
		if err := netconf.LinkUp("lo"); err != nil {
			log.Warn("bring lo up", "err", err)
		}
	}
	if err := process.BecomeSubreaper(); err != nil && !pid1 {
		log.Warn("cannot become a child subreaper", "err", err)
	}
	reaper := process.NewReaper(log)
	go reaper.Run(nil)

	procs := process.NewManager(log, reaper, dialHost)
	halt := func(reason string) {
		log.Info("powering off", "reason", reason, "uptime_ms", uptimeMs())
		procs.KillAll()
		logs.Flush(time.Second)
		if !pid1 {
			os.Exit(0)
		}
		unix.Sync()
		boot.UnmountAll()
		err := boot.PowerOff()
		log.Error("power off failed", "err", err)
		logs.Flush(time.Second)
		sleepForever() // PID 1 must never exit: the kernel would panic
	}

	if listenErr != nil {
		log.Error("cannot listen on vsock", "port", AgentPort, "err", listenErr)
	} else {
		log.Info("listening", "port", AgentPort, "uptime_ms", uptimeMs())
	}
	if cfg.PowerOff {
		// The boot-floor benchmark and KVM probe: everything up to here is
		// what a cold start pays for before the host can talk to us.
		halt("vminitd.poweroff=1")
	}
	if listenErr != nil {
		halt("no vsock listener")
	}

	var srv *server.Server
	var shutdownOnce sync.Once
	shutdown := func(reason string) {
		shutdownOnce.Do(func() {
			log.Info("shutting down", "reason", reason)
			procs.KillAll()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			procs.WaitAll(ctx)
			cancel()
			srv.Stop(time.Second)
			halt(reason)
		})
	}
	srv = server.New(server.Options{
		Log:       log,
		Version:   version,
		Processes: procs,
		Dial:      dialHost,
		Listen:    listenGuest,
		Shutdown:  func() { shutdown("Shutdown RPC") },
	})

	if cfg.BootstrapPort != 0 {
		go func() {
			reason := "the container process ended"
			if err := bootstrap(srv, <-bootstrapConn, cfg.BootstrapPort); err != nil {
				log.Error("bootstrap", "err", err)
				reason = "bootstrap failed"
			}
			shutdown(reason)
		}()
	}

	// Ctrl-Alt-Del, a power button, or kill from a debug shell.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGPWR)
	go func() {
		sig := <-sigs
		shutdown("signal " + sig.String())
	}()

	if err := srv.Serve(listener); err != nil {
		log.Error("gRPC server failed", "err", err)
		shutdown("server failed")
	}
	sleepForever() // Serve returned because a shutdown is in progress
}

// sleepForever blocks without looking like a deadlock to the runtime.
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

// dialHost connects to a host vsock port (the process stdio streams).
func dialHost(ctx context.Context, port uint32) (net.Conn, error) {
	return vsock.DialContext(ctx, hostCID, port, nil)
}

// listenGuest listens on a guest vsock port (relays the host dials).
func listenGuest(port uint32) (net.Listener, error) {
	return vsock.Listen(port, nil)
}

// agentMemoryMax caps vminitd's own memory (it uses a few MiB): a runaway
// agent is stopped by the kernel before it starves the container.
const agentMemoryMax = 256 << 20

// ownCgroup enables the controllers and moves vminitd into a cgroup of its
// own, so that the container's group holds the container's processes only.
func ownCgroup() error {
	if err := cgroup.EnableControllers(cgroup.Root); err != nil {
		return err
	}
	g, err := cgroup.Create(cgroup.Root, "vminitd", cgroup.Limits{MemoryBytes: agentMemoryMax})
	if err != nil {
		return err
	}
	return g.Join(os.Getpid())
}

// dialBootstrap starts dialing the host's bootstrap port at once, so the
// connection is up by the time the agent is ready to use it.
func dialBootstrap(port uint32) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := dialHost(ctx, port)
		if err != nil {
			conn = nil
		}
		ch <- conn
	}()
	return ch
}

// bootstrap fetches the container's process from the host over conn and runs
// it to its end (see BootstrapRequest in the proto).
func bootstrap(srv *server.Server, conn net.Conn, port uint32) error {
	if conn == nil {
		return fmt.Errorf("cannot dial the bootstrap port %d", port)
	}
	defer conn.Close()
	return srv.Bootstrap(context.Background(), conn)
}

// setupLogging writes JSON lines to the console, or to the host vsock port
// from vminitd.log=<port> (falling back to the console when it cannot).
// Outside a VM (not PID 1, for development) the console is stderr.
func setupLogging(cfg config.Config, pid1 bool) (*logging.Writer, *slog.Logger) {
	var out, fallback io.Writer
	var dialErr error
	if cfg.LogPort != 0 {
		// Short: the gRPC listener is up but not served until this is done.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := dialHost(ctx, cfg.LogPort)
		cancel()
		if err == nil {
			out = conn
			if pid1 {
				fallback = logging.OpenConsole()
			}
		}
		dialErr = err
	}
	if out == nil && pid1 {
		out = logging.OpenConsole()
	}
	if out == nil {
		out = os.Stderr
	}
	w := logging.NewWriter(out, fallback)
	log := logging.New(w, cfg.Debug)
	if dialErr != nil {
		log.Warn("cannot dial the log port; logging to the console", "port", cfg.LogPort, "err", dialErr)
	}
	return w, log
}

// logMounts lists the mount table, for debugging boot.
func logMounts(log *slog.Logger) {
	mounts, err := mount.List()
	if err != nil {
		log.Debug("cannot list mounts", "err", err)
		return
	}
	for _, m := range mounts {
		log.Debug("mount", "target", m.MountPoint, "fstype", m.FSType, "source", m.Source)
	}
}

func uptimeMs() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return float64(ts.Nano()) / 1e6
}
