package files

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// rootfs makes a small tree with links that stay inside and links that
// leave, and a file outside it that nothing may touch.
func rootfs(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "rootfs")
	outside = filepath.Join(base, "outside")
	for _, d := range []string{root + "/etc", root + "/usr/lib", outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(outside, "secret"), []byte("keep"), 0o600))
	must(os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("box\n"), 0o644))
	must(os.Symlink("usr/lib", filepath.Join(root, "lib")))                  // inside
	must(os.Symlink("../../outside", filepath.Join(root, "etc/up")))         // climbs out
	must(os.Symlink(outside, filepath.Join(root, "abs")))                    // absolute
	must(os.Symlink("../outside/secret", filepath.Join(root, "secretlink"))) // out, to a file
	must(os.Symlink("hostname", filepath.Join(root, "etc/name")))            // inside, to a file
	return root, outside
}

func open(t *testing.T, rootfs string) *Root {
	t.Helper()
	r, err := OpenRoot(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func expectCode(t *testing.T, err error, code errdefs.Code) {
	t.Helper()
	if !errdefs.Is(err, code) {
		t.Fatalf("got %v (%s), want %s", err, errdefs.CodeOf(err), code)
	}
}

func TestRel(t *testing.T) {
	for in, want := range map[string]string{"/": "", "/a/b/": "a/b", "/a/./b": "a/b", "/a/../b": "b", "//x": "x"} {
		if got, err := Rel(in); err != nil || got != want {
			t.Errorf("Rel(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "/..", "/a/../../b", "/a\x00b"} {
		_, err := Rel(in)
		expectCode(t, err, errdefs.InvalidArgument)
	}
}

func TestEscapesAreRefused(t *testing.T) {
	root, outside := rootfs(t)
	r := open(t, root)
	for _, p := range []string{"/etc/up/secret", "/abs/secret", "/secretlink", "/../outside/secret"} {
		expectCode(t, r.WriteFile(p, []byte("pwned"), WriteOptions{}), errdefs.InvalidArgument)
	}
	for _, p := range []string{"/etc/up/new", "/abs/new"} {
		expectCode(t, r.Mkdir(p, 0, true), errdefs.InvalidArgument)
		expectCode(t, r.Mkdir(p, 0, false), errdefs.InvalidArgument)
		_, err := r.Stat(p)
		expectCode(t, err, errdefs.InvalidArgument)
		expectCode(t, r.Replace(p, nil, 0o644), errdefs.InvalidArgument)
		expectCode(t, r.Unmount(p, false), errdefs.InvalidArgument)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "keep" {
		t.Fatalf("outside file changed: %q", b)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Fatalf("outside dir changed: %v", entries)
	}
}

func TestMkdir(t *testing.T) {
	root, _ := rootfs(t)
	r := open(t, root)
	if err := r.Mkdir("/lib/a/b", 0o2750, true); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{"usr/lib/a": 0o755, "usr/lib/a/b": 0o750 | os.ModeSetgid} {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil || st.Mode()&(os.ModePerm|os.ModeSetgid) != mode || !st.IsDir() {
			t.Errorf("%s: %v %v, want %v", p, st.Mode(), err, mode)
		}
	}
	if err := r.Mkdir("/lib/a/b", 0, true); err != nil {
		t.Fatalf("existing, with parents: %v", err)
	}
	expectCode(t, r.Mkdir("/lib/a/b", 0, false), errdefs.Exists)
	expectCode(t, r.Mkdir("/no/such", 0, false), errdefs.NotFound)
	expectCode(t, r.Mkdir("/etc/hostname/x", 0, true), errdefs.InvalidArgument)
}

func TestWriteFile(t *testing.T) {
	root, _ := rootfs(t)
	r := open(t, root)
	if err := r.WriteFile("/etc/new", []byte("one\n"), WriteOptions{Mode: 0o640}); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("/etc/new", []byte("two\n"), WriteOptions{Append: true, Mode: 0o777}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(root, "etc/new"))
	if b, _ := os.ReadFile(filepath.Join(root, "etc/new")); string(b) != "one\ntwo\n" || st.Mode().Perm() != 0o640 {
		t.Fatalf("got %q %v", b, st.Mode())
	}
	// Through an inside link, truncating.
	if err := r.WriteFile("/etc/name", []byte("other\n"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(b) != "other\n" {
		t.Fatalf("through a link: %q", b)
	}
	expectCode(t, r.WriteFile("/etc/name", nil, WriteOptions{Exclusive: true}), errdefs.Exists)
	expectCode(t, r.WriteFile("/etc", nil, WriteOptions{}), errdefs.InvalidArgument)
	expectCode(t, r.WriteFile("/", nil, WriteOptions{}), errdefs.InvalidArgument)
	expectCode(t, r.WriteFile("/missing/file", nil, WriteOptions{}), errdefs.NotFound)
}

func TestReplace(t *testing.T) {
	root, outside := rootfs(t)
	r := open(t, root)
	// The link itself is replaced, not followed.
	if err := os.Symlink("../../outside/secret", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	if err := r.Replace("/etc/resolv.conf", []byte("nameserver 10.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(filepath.Join(root, "etc/resolv.conf"))
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o644 {
		t.Fatalf("%v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "keep" {
		t.Fatalf("outside file changed: %q", b)
	}
	// Missing directories are made.
	if err := r.Replace("/opt/x/hosts", []byte("h"), 0o600); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "etc")); len(entries) != 4 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestStat(t *testing.T) {
	root, _ := rootfs(t)
	r := open(t, root)
	in, err := r.Stat("/etc/hostname")
	if err != nil || in.Type != TypeRegular || in.Size != 4 || in.Mode != 0o644 || in.MtimeNs == 0 {
		t.Fatalf("%+v %v", in, err)
	}
	in, err = r.Stat("/abs") // the link itself may be described
	if err != nil || in.Type != TypeSymlink || in.LinkTarget == "" {
		t.Fatalf("%+v %v", in, err)
	}
	in, err = r.Stat("/lib/")
	if err != nil || in.Type != TypeSymlink || in.LinkTarget != "usr/lib" {
		t.Fatalf("%+v %v", in, err)
	}
	if in, err = r.Stat("/"); err != nil || in.Type != TypeDirectory {
		t.Fatalf("%+v %v", in, err)
	}
	_, err = r.Stat("/nope")
	expectCode(t, err, errdefs.NotFound)
}

func TestUnconfined(t *testing.T) {
	root, _ := rootfs(t)
	r := open(t, "")
	// The guest's own root: absolute links are followed as usual.
	if err := r.WriteFile(filepath.Join(root, "abs", "made"), []byte("x"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := OpenRoot("relative")
	expectCode(t, err, errdefs.InvalidArgument)
	_, err = OpenRoot(filepath.Join(root, "missing"))
	expectCode(t, err, errdefs.NotFound)
}

func TestUnmountNotAMountPoint(t *testing.T) {
	root, _ := rootfs(t)
	r := open(t, root)
	expectCode(t, r.Unmount("/etc", false), errdefs.InvalidArgument)
	expectCode(t, r.Unmount("/nope", false), errdefs.NotFound)
	expectCode(t, r.Unmount("/", false), errdefs.InvalidArgument)
}

func TestTrimErrors(t *testing.T) {
	_, err := Trim("relative", 0)
	expectCode(t, err, errdefs.InvalidArgument)
	_, err = Trim("/no/such/path", 0)
	expectCode(t, err, errdefs.NotFound)
}

// Mounts for real (VMINITD_MOUNT_TESTS=1, as root): a tmpfs in a temporary
// directory, unmounted again through a rootfs.
func TestUnmountMounted(t *testing.T) {
	if os.Getenv("VMINITD_MOUNT_TESTS") != "1" || os.Geteuid() != 0 {
		t.Skip("set VMINITD_MOUNT_TESTS=1 and run as root")
	}
	root, _ := rootfs(t)
	target := filepath.Join(root, "usr/lib")
	if err := unix.Mount("tmpfs", target, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
	_, err := Trim(target, 0)
	expectCode(t, err, errdefs.Unsupported)
	r := open(t, root)
	if err := r.Unmount("/lib", false); err == nil {
		t.Fatal("unmounted through a symlink")
	}
	if err := r.Unmount("/usr/lib", false); err != nil {
		t.Fatal(err)
	}
	expectCode(t, r.Unmount("/usr/lib", false), errdefs.InvalidArgument)
}
