package process

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// makeRoot builds a tiny rootfs in a temp dir.
func makeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/local/bin", "opt/tools", "work", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(root, p), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("usr/bin/sh", 0o755)
	write("usr/bin/data", 0o644)
	write("usr/local/bin/tool", 0o755)
	write("opt/tools/tool", 0o755)
	write("work/run.sh", 0o755)
	// merged-usr style relative symlink, and an absolute one that must
	// resolve inside the root, not on the host.
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/bin/sh", filepath.Join(root, "usr/bin/abs-sh")); err != nil {
		t.Fatal(err)
	}
	// Exists on a normal host, but not in our root.
	if err := os.Symlink("/etc/passwd-not-in-root", filepath.Join(root, "usr/bin/dangling")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestLookPath(t *testing.T) {
	root := makeRoot(t)
	tests := []struct {
		name, cwd, file string
		env             []string
		want            string
		code            errdefs.Code
	}{
		{"default PATH", "/", "sh", nil, "/usr/bin/sh", ""}, // via /usr/bin before /bin
		{"env PATH", "/", "sh", []string{"PATH=/usr/bin"}, "/usr/bin/sh", ""},
		{"PATH order", "/", "tool", []string{"PATH=/opt/tools:/usr/local/bin"}, "/opt/tools/tool", ""},
		{"last PATH wins", "/", "tool", []string{"PATH=/opt/tools", "PATH=/usr/local/bin"}, "/usr/local/bin/tool", ""},
		{"symlinked dir", "/", "sh", []string{"PATH=/bin"}, "/bin/sh", ""},
		{"absolute symlink in root", "/", "abs-sh", []string{"PATH=/usr/bin"}, "/usr/bin/abs-sh", ""},
		{"dangling symlink", "/", "dangling", []string{"PATH=/usr/bin"}, "", errdefs.NotFound},
		{"not executable skipped", "/", "data", []string{"PATH=/usr/bin"}, "", errdefs.NotFound},
		{"missing", "/", "foo", []string{"PATH=/usr/bin:/bin"}, "", errdefs.NotFound},
		{"empty PATH entry is cwd", "/work", "run.sh", []string{"PATH=:/usr/bin"}, "./run.sh", ""},
		{"absolute", "/", "/usr/bin/sh", nil, "/usr/bin/sh", ""},
		{"relative with slash", "/work", "./run.sh", nil, "./run.sh", ""},
		{"absolute missing", "/", "/nope/sh", nil, "", errdefs.NotFound},
		{"absolute directory", "/", "/usr/bin", nil, "", errdefs.InvalidArgument},
		{"absolute not executable", "/", "/usr/bin/data", nil, "", errdefs.InvalidArgument},
		{"escape attempt", "/", "../../../../bin/true", nil, "", errdefs.NotFound},
		{"empty", "/", "", nil, "", errdefs.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LookPath(root, tt.cwd, tt.file, tt.env)
			if tt.code != "" {
				if err == nil {
					t.Fatalf("LookPath(%q) = %q, want %s error", tt.file, got, tt.code)
				}
				if c := errdefs.CodeOf(err); c != tt.code {
					t.Fatalf("LookPath(%q) error %v has code %s, want %s", tt.file, err, c, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("LookPath(%q): %v", tt.file, err)
			}
			if got != tt.want {
				t.Fatalf("LookPath(%q) = %q, want %q", tt.file, got, tt.want)
			}
		})
	}
}

func TestLookPathMessage(t *testing.T) {
	root := makeRoot(t)
	_, err := LookPath(root, "/", "foo", []string{"PATH=/usr/bin"})
	if err == nil || !strings.Contains(err.Error(), `executable "foo" not found in $PATH`) {
		t.Fatalf("message: %v", err)
	}
}

func TestCheckDir(t *testing.T) {
	root := makeRoot(t)
	if err := CheckDir(root, "/work"); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(root, "/bin"); err != nil {
		t.Fatalf("symlink to dir: %v", err)
	}
	if c := errdefs.CodeOf(CheckDir(root, "/missing")); c != errdefs.NotFound {
		t.Fatalf("missing: %s", c)
	}
	if c := errdefs.CodeOf(CheckDir(root, "/usr/bin/sh")); c != errdefs.InvalidArgument {
		t.Fatalf("file: %s", c)
	}
	if c := errdefs.CodeOf(CheckDir(root, "/usr/bin/sh/x")); c != errdefs.NotFound {
		t.Fatalf("under a file: %s", c)
	}
}

func TestEnvValue(t *testing.T) {
	if v, ok := EnvValue([]string{"A=1", "PATH=/a", "B", "PATH=/b=c"}, "PATH"); !ok || v != "/b=c" {
		t.Fatalf("got %q %v", v, ok)
	}
	if _, ok := EnvValue([]string{"PATHX=1"}, "PATH"); ok {
		t.Fatal("prefix matched")
	}
}
