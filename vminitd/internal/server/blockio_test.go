package server

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseBlockStat(t *testing.T) {
	// A real line: reads, merges, sectors, ticks, then the same for writes...
	r, w, err := parseBlockStat("     312        0    18042      121       85       40     1672      230        0      360      352        0        0        0        0       12        1\n")
	if err != nil || r != 18042 || w != 1672 {
		t.Fatalf("%d %d %v", r, w, err)
	}
	if _, _, err := parseBlockStat("1 2 3"); err == nil {
		t.Error("a short line parsed")
	}
	if _, _, err := parseBlockStat("1 2 x 4 5 6 7"); err == nil {
		t.Error("a bad number parsed")
	}
}

func TestBlockIO(t *testing.T) {
	dir := t.TempDir()
	for name, line := range map[string]string{"vdb": "1 0 10 0 1 0 20 0 0 0 0", "vdc": "1 0 1 0 1 0 2 0 0 0 0"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, w, err := blockIO(dir, []string{"vdb", "vdc"})
	if err != nil || r != 11*512 || w != 22*512 {
		t.Fatalf("%d %d %v", r, w, err)
	}
	if _, _, err := blockIO(dir, []string{"vdz"}); err == nil {
		t.Error("a missing device read")
	}
}
