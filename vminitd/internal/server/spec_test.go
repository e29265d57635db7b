package server

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/process"
	"github.com/container-vm/container/vminitd/internal/sandbox"
)

func TestProcessSpecTranslation(t *testing.T) {
	got, err := processSpec(&agentv1.ProcessSpec{
		Args: []string{"sh"}, Env: []string{"A=1"}, Cwd: "/w", Rootfs: "/run/rootfs",
		ReadonlyRootfs: true, User: "nobody", Terminal: true, Rows: 40, Cols: 1 << 20,
		CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"ALL"}, NoNewPrivileges: true, Init: true,
		Rlimits: []*agentv1.Rlimit{{Type: "nofile", Soft: 10, Hard: 20}},
		Sandbox: &agentv1.Sandbox{
			Hostname: "h", ShmSizeBytes: 1 << 20, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
			Tmpfs: []*agentv1.TmpfsMount{{Path: "/scratch", Options: []string{"size=1m"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := process.Spec{
		Args: []string{"sh"}, Env: []string{"A=1"}, Cwd: "/w", Rootfs: "/run/rootfs",
		ReadonlyRootfs: true, User: "nobody", Terminal: true, Rows: 40, Cols: 65535,
		CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"ALL"}, NoNewPrivs: true, Init: true,
		Rlimits: []sandbox.Rlimit{{Resource: unix.RLIMIT_NOFILE, Soft: 10, Hard: 20}},
		Container: process.Container{
			Hostname: "h", ShmSize: 1 << 20, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
			Tmpfs: []sandbox.Tmpfs{{Path: "/scratch", Options: []string{"size=1m"}}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestProcessSpecBadRlimit(t *testing.T) {
	_, err := processSpec(&agentv1.ProcessSpec{Args: []string{"sh"}, Rlimits: []*agentv1.Rlimit{{Type: "bogus"}}})
	if errdefs.CodeOf(err) != errdefs.InvalidArgument {
		t.Fatalf("got %v", err)
	}
}
