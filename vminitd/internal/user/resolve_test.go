package user

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

const testPasswd = `# users
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bob:x:1000:1000:Bob:/home/bob:/bin/bash
nohome:x:1002:1002:::
+nis:x:0:0::/:/bin/sh
dup:x:1003:1003::/first:/bin/sh
dup:x:1004:1004::/second:/bin/sh
2000:x:1005:1005::/home/numeric:/bin/sh
`

const testGroup = `# groups
root:x:0:root
wheel:x:10:root,bob
bob:x:1000:
staff:x:50: bob , nohome
docker:x:999:bob
wheel2:x:10:bob
`

// writeRoot makes a rootfs whose /etc holds the given files (path: content).
func writeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestResolve(t *testing.T) {
	root := writeRoot(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	tests := []struct {
		spec string
		want Identity
	}{
		{"", Identity{Name: "root", UID: 0, GID: 0, Groups: []uint32{0, 10}, Home: "/root", Shell: "/bin/sh"}},
		{"root", Identity{Name: "root", UID: 0, GID: 0, Groups: []uint32{0, 10}, Home: "/root", Shell: "/bin/sh"}},
		{"bob", Identity{Name: "bob", UID: 1000, GID: 1000, Groups: []uint32{1000, 10, 50, 999}, Home: "/home/bob", Shell: "/bin/bash"}},
		{"bob:", Identity{Name: "bob", UID: 1000, GID: 1000, Groups: []uint32{1000, 10, 50, 999}, Home: "/home/bob", Shell: "/bin/bash"}},
		{"1000", Identity{Name: "bob", UID: 1000, GID: 1000, Groups: []uint32{1000, 10, 50, 999}, Home: "/home/bob", Shell: "/bin/bash"}},
		// An explicit group replaces the primary; the supplementary groups stay.
		{"bob:staff", Identity{Name: "bob", UID: 1000, GID: 50, Groups: []uint32{50, 10, 999}, Home: "/home/bob", Shell: "/bin/bash"}},
		{"bob:4242", Identity{Name: "bob", UID: 1000, GID: 4242, Groups: []uint32{4242, 10, 50, 999}, Home: "/home/bob", Shell: "/bin/bash"}},
		{"1000:docker", Identity{Name: "bob", UID: 1000, GID: 999, Groups: []uint32{999, 10, 50}, Home: "/home/bob", Shell: "/bin/bash"}},
		{"1000:0", Identity{Name: "bob", UID: 1000, GID: 0, Groups: []uint32{0, 10, 50, 999}, Home: "/home/bob", Shell: "/bin/bash"}},
		// A uid with no entry: gid 0 unless given, home "/", no name, so no
		// supplementary groups.
		{"4242", Identity{UID: 4242, GID: 0, Groups: []uint32{0}, Home: "/"}},
		{"4242:50", Identity{UID: 4242, GID: 50, Groups: []uint32{50}, Home: "/"}},
		{"4242:staff", Identity{UID: 4242, GID: 50, Groups: []uint32{50}, Home: "/"}},
		{"2147483647", Identity{UID: 2147483647, Groups: []uint32{0}, Home: "/"}},
		// A numeric user is a uid even when a user has that name.
		{"2000", Identity{UID: 2000, Groups: []uint32{0}, Home: "/"}},
		{":staff", Identity{Name: "root", UID: 0, GID: 50, Groups: []uint32{50, 0, 10}, Home: "/root", Shell: "/bin/sh"}},
		{"nohome", Identity{Name: "nohome", UID: 1002, GID: 1002, Groups: []uint32{1002, 50}, Home: "/"}},
		{"dup", Identity{Name: "dup", UID: 1003, GID: 1003, Groups: []uint32{1003}, Home: "/first", Shell: "/bin/sh"}},
	}
	for _, tt := range tests {
		got, err := Resolve(root, tt.spec)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tt.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Resolve(%q) =\n%+v, want\n%+v", tt.spec, got, tt.want)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	root := writeRoot(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	empty := t.TempDir()
	tests := []struct {
		root, spec string
		code       errdefs.Code
		msg        string
	}{
		{root, "nobody", errdefs.NotFound, `user "nobody" not found in /etc/passwd`},
		{root, "+nis", errdefs.NotFound, `user "+nis" not found in /etc/passwd`},
		{root, "bob:nogroup", errdefs.NotFound, `group "nogroup" not found in /etc/group`},
		{root, "2147483648", errdefs.InvalidArgument, "uid 2147483648 is out of range (0 to 2147483647)"},
		{root, "-1", errdefs.InvalidArgument, "uid -1 is out of range"},
		{root, "99999999999999999999", errdefs.InvalidArgument, "out of range"},
		{root, "bob:-5", errdefs.InvalidArgument, "gid -5 is out of range"},
		{root, "nobody:nogroup", errdefs.NotFound, `user "nobody"`},
		{empty, "bob", errdefs.NotFound, `user "bob" not found: the image has no /etc/passwd`},
		{empty, "1000:staff", errdefs.NotFound, `group "staff" not found: the image has no /etc/group`},
	}
	for _, tt := range tests {
		_, err := Resolve(tt.root, tt.spec)
		if err == nil {
			t.Errorf("Resolve(%q): no error", tt.spec)
			continue
		}
		if c := errdefs.CodeOf(err); c != tt.code {
			t.Errorf("Resolve(%q): code %s, want %s (%v)", tt.spec, c, tt.code, err)
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Resolve(%q): %q does not contain %q", tt.spec, err, tt.msg)
		}
	}
	_, err := Resolve(root, "nobody")
	if errdefs.HintOf(err) == "" {
		t.Error("user not found has no hint")
	}
}

func TestResolveWithoutFiles(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		spec string
		want Identity
	}{
		{"", Identity{Groups: []uint32{0}, Home: "/"}},
		{"1000", Identity{UID: 1000, Groups: []uint32{0}, Home: "/"}},
		{"1000:1000", Identity{UID: 1000, GID: 1000, Groups: []uint32{1000}, Home: "/"}},
	}
	for _, tt := range tests {
		got, err := Resolve(empty, tt.spec)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Resolve(%q) = %+v, %v; want %+v", tt.spec, got, err, tt.want)
		}
	}
}

// The image's files are read inside the rootfs, never through a link to the
// guest's own.
func TestResolveHostileRoot(t *testing.T) {
	outside := writeRoot(t, map[string]string{"passwd": "evil:x:7:7::/:\n", "group": "evil:x:7:evil\n"})
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group"} {
		if err := os.Symlink(filepath.Join(outside, f), filepath.Join(root, "etc", f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Resolve(root, "evil"); !errdefs.Is(err, errdefs.NotFound) {
		t.Fatalf("read through a link out of the rootfs: %v", err)
	}
	if _, err := Resolve(root, "0:evil"); !errdefs.Is(err, errdefs.NotFound) {
		t.Fatalf("read /etc/group through a link out of the rootfs: %v", err)
	}

	// A link inside the rootfs is fine.
	inside := writeRoot(t, map[string]string{"real/passwd": "bob:x:1000:1000::/home/bob:/bin/sh\n"})
	if err := os.MkdirAll(filepath.Join(inside, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/real/passwd", filepath.Join(inside, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if id, err := Resolve(inside, "bob"); err != nil || id.UID != 1000 {
		t.Fatalf("link inside the rootfs: %+v %v", id, err)
	}
}

func TestResolveNotRegular(t *testing.T) {
	fifo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fifo, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(fifo, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc/passwd"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, root := range map[string]string{"fifo": fifo, "dir": dir} {
		done := make(chan error, 1)
		go func() { _, err := Resolve(root, "bob"); done <- err }()
		select {
		case err := <-done:
			if !errdefs.Is(err, errdefs.InvalidArgument) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Resolve hangs", name)
		}
	}
}

func TestResolveLongLine(t *testing.T) {
	root := writeRoot(t, map[string]string{"etc/passwd": "bob:x:1:1:" + strings.Repeat("g", maxLine) + ":/:\n"})
	if _, err := Resolve(root, "bob"); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Fatalf("got %v", err)
	}
}
