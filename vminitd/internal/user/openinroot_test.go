package user

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostileRoot builds a rootfs full of links that try to leave it, and a
// file outside it that no lookup may ever read.
func hostileRoot(t *testing.T) (root string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	outside := filepath.Join(base, "secret")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(outside, []byte("outside"), 0o644))
	for _, d := range []string{"etc/dir", "real", "a/b"} {
		must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("passwd"), 0o644))
	must(os.WriteFile(filepath.Join(root, "real/file"), []byte("real"), 0o644))
	links := map[string]string{
		"etc/abs":       "/real/file",
		"etc/rel":       "../real/file",
		"etc/clamped":   "../../../../../../real/file", // ".." stops at the root
		"etc/outside":   outside,                       // a host path: not in the root
		"etc/up":        "../../secret",                // the outside file, relatively
		"etc/chain":     "abs",                         // link to a link
		"etc/loop1":     "loop2",
		"etc/loop2":     "loop1",
		"etc/magic":     "/proc/self/root" + outside, // magic link: no /proc in the root
		"etc/dangling":  "/nope",
		"lnkdir":        "/real",
		"a/b/parent":    "..",
		"etc/dirlink":   "dir",
		"etc/passwd2":   "/etc/../etc/./passwd",
		"etc/throughup": "/a/b/parent/../real/file", // physical "..": a/b/.. is a, a/.. is the root
	}
	for name, target := range links {
		must(os.Symlink(target, filepath.Join(root, name)))
	}
	must(unix.Mkfifo(filepath.Join(root, "etc/fifo"), 0o644))
	return root
}

func TestOpenInRoot(t *testing.T) {
	root := hostileRoot(t)
	tests := []struct {
		name string
		want string // content, or:
		err  error
	}{
		{"/etc/passwd", "passwd", nil},
		{"etc/passwd", "passwd", nil},
		{"/etc/abs", "real", nil},
		{"/etc/rel", "real", nil},
		{"/etc/clamped", "real", nil},
		{"/../../etc/passwd", "passwd", nil},
		{"/etc/chain", "real", nil},
		{"/lnkdir/file", "real", nil},
		{"/lnkdir/../etc/passwd", "passwd", nil}, // the parent of /real, not of /lnkdir
		{"/a/b/parent/b/parent/../real/file", "real", nil},
		{"/etc/passwd2", "passwd", nil},
		{"/etc/throughup", "real", nil},
		{"/etc/outside", "", unix.ENOENT},
		{"/etc/up", "", unix.ENOENT},
		{"/etc/magic", "", unix.ENOENT},
		{"/etc/dangling", "", unix.ENOENT},
		{"/missing", "", unix.ENOENT},
		{"/etc/loop1", "", unix.ELOOP},
		{"/etc/passwd/x", "", unix.ENOTDIR},
		{"/etc/passwd/", "", unix.ENOTDIR},
		{"/etc/fifo", "", errNotRegular},
		{"/etc/dir", "", errNotRegular},
		{"/etc/dirlink", "", errNotRegular},
		{"/", "", errNotRegular},
	}
	resolvers := map[string]func(int, string) (int, error){
		"openat2": openat2InRoot,
		"walk":    walkInRoot,
		"default": resolveInRoot,
	}
	for rname, resolve := range resolvers {
		t.Run(rname, func(t *testing.T) {
			if rname == "openat2" {
				if _, err := openat2InRoot(unix.AT_FDCWD, "/"); errors.Is(err, unix.ENOSYS) {
					t.Skip("kernel has no openat2")
				}
			}
			for _, tt := range tests {
				// Each lookup must finish: a FIFO opened for reading would block.
				done := make(chan struct{})
				var got string
				var err error
				go func() {
					defer close(done)
					var f *os.File
					if f, err = openWith(root, tt.name, resolve); err == nil {
						b, rerr := io.ReadAll(f)
						f.Close()
						got, err = string(b), rerr
					}
				}()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: lookup hangs", tt.name)
				}
				switch {
				case tt.err != nil && !errors.Is(err, tt.err):
					t.Errorf("%s: got %q, %v; want error %v", tt.name, got, err, tt.err)
				case tt.err == nil && (err != nil || got != tt.want):
					t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
				}
			}
		})
	}
}

func TestOpenInRootDevice(t *testing.T) {
	root := t.TempDir()
	if err := unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("cannot make a device node: %v", err)
	}
	if _, err := openInRoot(root, "/null"); !errors.Is(err, errNotRegular) {
		t.Fatalf("device node: got %v, want %v", err, errNotRegular)
	}
}
