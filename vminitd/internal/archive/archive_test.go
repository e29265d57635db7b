package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

func write(t *testing.T, p, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	write(t, filepath.Join(src, "d", "a.txt"), "alpha")
	write(t, filepath.Join(src, "d", "sub", "b.txt"), "beta")
	if err := os.Symlink("a.txt", filepath.Join(src, "d", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "d", "a.txt"), filepath.Join(src, "d", "hard")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, filepath.Join(src, "d")); err != nil {
		t.Fatal(err)
	}
	archive := buf.Bytes()

	// Into an existing directory: dest/d/...
	into := t.TempDir()
	if err := Extract(bytes.NewReader(archive), into, false); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(into, "d", "sub", "b.txt")) != "beta" || read(t, filepath.Join(into, "d", "hard")) != "alpha" {
		t.Fatal("tree not copied")
	}
	if l, _ := os.Readlink(filepath.Join(into, "d", "link")); l != "a.txt" {
		t.Fatalf("symlink = %q", l)
	}
	if fi, _ := os.Stat(filepath.Join(into, "d", "a.txt")); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}

	// To a new name: the top entry takes it.
	parent := t.TempDir()
	if err := Extract(bytes.NewReader(archive), filepath.Join(parent, "renamed"), false); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(parent, "renamed", "a.txt")) != "alpha" {
		t.Fatal("not renamed")
	}

	// A missing parent is notFound.
	err := Extract(bytes.NewReader(archive), filepath.Join(parent, "no", "such"), false)
	if errdefs.CodeOf(err) != errdefs.NotFound {
		t.Fatalf("missing parent: %v", err)
	}
}

func TestSingleFileAndContents(t *testing.T) {
	src := t.TempDir()
	write(t, filepath.Join(src, "hosts"), "127.0.0.1 x\n")
	var buf bytes.Buffer
	if err := Write(&buf, filepath.Join(src, "hosts")); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Extract(bytes.NewReader(buf.Bytes()), filepath.Join(dst, "copy"), false); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(dst, "copy")) != "127.0.0.1 x\n" {
		t.Fatal("file not copied under the new name")
	}

	// A contents archive (no top entry) lands in dest, made when missing.
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for _, n := range []string{"x", "y/z"} {
		_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("1"))
	}
	_ = tw.Close()
	if err := Extract(&tarBuf, filepath.Join(dst, "new"), true); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(dst, "new", "y", "z")) != "1" {
		t.Fatal("contents not extracted into dest")
	}
}

func TestHostileArchives(t *testing.T) {
	cases := map[string][]*tar.Header{
		"dotdot":   {{Name: "a/../../evil", Typeflag: tar.TypeReg}},
		"absolute": {{Name: "/etc/evil", Typeflag: tar.TypeReg}},
		"through a symlink": {
			{Name: "a", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "a/out", Typeflag: tar.TypeSymlink, Linkname: "/"},
			{Name: "a/out/evil", Typeflag: tar.TypeReg},
		},
	}
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range hdrs {
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
			}
			_ = tw.Close()
			dst := t.TempDir()
			err := Extract(&buf, dst, false)
			if errdefs.CodeOf(err) != errdefs.InvalidArgument || !strings.Contains(err.Error(), "archive entry") {
				t.Fatalf("got %v, want an invalidArgument about the entry", err)
			}
		})
	}
}

func TestWriteMissing(t *testing.T) {
	if err := Write(&bytes.Buffer{}, "/no/such/path"); errdefs.CodeOf(err) != errdefs.NotFound {
		t.Fatalf("got %v", err)
	}
}

func TestWriteContents(t *testing.T) {
	src := t.TempDir()
	write(t, filepath.Join(src, "a"), "1")
	write(t, filepath.Join(src, "sub", "b"), "2")
	var buf bytes.Buffer
	if err := Write(&buf, src+"/."); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if strings.Join(names, " ") != "./ a sub/ sub/b" {
		t.Fatalf("names = %q", names)
	}
	if err := Write(&bytes.Buffer{}, filepath.Join(src, "a")+"/."); errdefs.CodeOf(err) != errdefs.InvalidArgument {
		t.Fatalf("file/.: %v", err)
	}
}
