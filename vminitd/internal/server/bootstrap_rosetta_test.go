package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/binfmt"
	"github.com/container-vm/container/vminitd/internal/mount"
	"github.com/container-vm/container/vminitd/internal/process"
)

// Rosetta's rule has flag F: the kernel opens the interpreter when the rule
// is registered, so the share must be mounted, on a target made for it, first.
func TestBootstrapMountsTheRosettaShareBeforeRegistering(t *testing.T) {
	target := filepath.Join(t.TempDir(), "run", "rosetta")
	var steps []string
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := New(Options{
		Log:        log,
		Processes:  process.NewManager(log, process.NewReaper(log), nil),
		CgroupRoot: t.TempDir(),
		Mount: func(source, tgt, fstype string, o mount.Options) error {
			if st, err := os.Stat(tgt); err != nil || !st.IsDir() {
				t.Errorf("mount target %s not created: %v", tgt, err)
			}
			steps = append(steps, "mount "+source+" "+fstype)
			return nil
		},
		RegisterBinfmt: func(r binfmt.Rule) (string, error) {
			steps = append(steps, "binfmt "+r.Name+" "+r.Interpreter+" "+r.Flags)
			return "enabled\n", nil
		},
	})
	req := &agentv1.BootstrapRequest{
		Mounts: []*agentv1.MountRequest{{Source: "rosetta", Target: target, Fstype: "virtiofs", Options: []string{"ro"}}},
		Binfmt: []*agentv1.RegisterBinfmtRequest{{
			Emulator:    &agentv1.RegisterBinfmtRequest_Rosetta{Rosetta: true},
			Interpreter: "/run/rosetta/rosetta",
		}},
	}
	// No process: the request fails after the mounts and rules are done.
	if _, err := srv.bootstrap(context.Background(), req, func(int32) error { return nil }); err == nil {
		t.Fatal("bootstrap without a process: want an error")
	}
	want := []string{"mount rosetta virtiofs", "binfmt rosetta /run/rosetta/rosetta CF"}
	if len(steps) != len(want) || steps[0] != want[0] || steps[1] != want[1] {
		t.Fatalf("steps = %q, want %q", steps, want)
	}
}
