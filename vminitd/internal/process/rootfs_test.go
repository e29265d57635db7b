package process

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/mount"
)

// Mounts for real, so it runs only when asked (as root, with mount rights):
// VMINITD_MOUNT_TESTS=1 go test ./internal/process -run Rootfs
func TestRootfsPrepare(t *testing.T) {
	if os.Getenv("VMINITD_MOUNT_TESTS") != "1" {
		t.Skip("set VMINITD_MOUNT_TESTS=1 to run (mounts as root)")
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "sys"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An image's symlink where a mount point should be is not followed.
	if err := os.Symlink("/", filepath.Join(root, "proc")); err != nil {
		t.Fatal(err)
	}
	p := NewRootfsPreparer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := p.Prepare(root, "", 0); err == nil {
		t.Fatal("symlinked /proc accepted")
	}
	if err := os.Remove(filepath.Join(root, "proc")); err != nil {
		t.Fatal(err)
	}
	if err := p.Prepare(root, "", 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range []string{"dev/mqueue", "dev/shm", "dev/pts", "dev", "sys"} {
			_ = unix.Unmount(filepath.Join(root, d), unix.MNT_DETACH)
		}
	})
	for _, d := range []string{"sys", "dev", "dev/pts", "dev/shm"} {
		ok, err := mount.IsMountPoint(filepath.Join(root, d))
		if err != nil || !ok {
			t.Errorf("/%s not mounted: %v", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "dev", "null")); err != nil {
		t.Errorf("no /dev/null: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "proc")); err != nil || !fi.IsDir() {
		t.Errorf("no /proc directory: %v", err)
	}
	if err := p.Prepare(root, "", 0); err != nil { // once only, and idempotent
		t.Fatal(err)
	}
}
