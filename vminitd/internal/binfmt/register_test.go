package binfmt

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// These tests use a plain directory standing in for binfmt_misc: registering
// for real would change how the test machine runs binaries.

func testRule(t *testing.T) Rule {
	t.Helper()
	r, err := Rosetta("/run/rosetta/rosetta")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRegisterMountsFirst(t *testing.T) {
	dir := t.TempDir()
	var mounted []string
	mount := func(d string) error {
		mounted = append(mounted, d)
		return os.WriteFile(filepath.Join(d, "register"), nil, 0o200)
	}
	r := testRule(t)
	if err := register(dir, r, mount); err != nil {
		t.Fatal(err)
	}
	if len(mounted) != 1 || mounted[0] != dir {
		t.Fatalf("mounted %v", mounted)
	}
	if got := read(t, filepath.Join(dir, "register")); got != r.String() {
		t.Fatalf("register got %q", got)
	}
	// Mounted now: not again.
	if err := register(dir, r, mount); err != nil || len(mounted) != 1 {
		t.Fatalf("second register: %v, mounted %v", err, mounted)
	}
}

func TestRegisterReplaces(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"register", "rosetta", "other"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	noMount := func(string) error { t.Fatal("mounted although mounted"); return nil }
	r := testRule(t)
	if err := register(dir, r, noMount); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "rosetta")); got != "-1" {
		t.Fatalf("old rule got %q, want -1", got)
	}
	if got := read(t, filepath.Join(dir, "other")); got != "" {
		t.Fatalf("another rule touched: %q", got)
	}
	if got := read(t, filepath.Join(dir, "register")); got != r.String() {
		t.Fatalf("register got %q", got)
	}
}

func TestRegisterErrors(t *testing.T) {
	dir := t.TempDir()
	failed := errdefs.Unsupportedf("the kernel has no binfmt_misc")
	err := register(dir, testRule(t), func(string) error { return failed })
	if !errors.Is(err, failed) {
		t.Fatalf("mount failure: %v", err)
	}

	bad := testRule(t)
	bad.Interpreter = "relative"
	called := false
	err = register(dir, bad, func(string) error { called = true; return nil })
	if !errdefs.Is(err, errdefs.InvalidArgument) || called {
		t.Fatalf("invalid rule: %v (mount called: %v)", err, called)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("invalid rule wrote %v", entries)
	}
}
