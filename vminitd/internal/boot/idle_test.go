package boot

import (
	"bufio"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyMappings(t *testing.T) {
	maps := `00400000-00a00000 r-xp 00000000 fe:00 12 /sbin/vminitd
00a00000-01000000 r--p 00600000 fe:00 12 /sbin/vminitd
01000000-01100000 rw-p 00c00000 fe:00 12 /sbin/vminitd
01100000-01200000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--p 00000000 fe:00 13 /lib/other
`
	got, err := readOnlyMappings(bufio.NewScanner(strings.NewReader(maps)), "/sbin/vminitd")
	want := [][2]uintptr{{0x400000, 0xa00000}, {0xa00000, 0x1000000}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%x %v", got, err)
	}
}

// On this test binary itself: the pages go, and the program keeps working
// (its code faults back in).
func TestReleaseImagePages(t *testing.T) {
	before := rssFile(t)
	if err := ReleaseImagePages(); err != nil {
		t.Fatal(err)
	}
	if after := rssFile(t); after >= before {
		t.Errorf("RssFile %d kB before, %d kB after", before, after)
	}
}

func rssFile(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no RssFile")
	return 0
}
