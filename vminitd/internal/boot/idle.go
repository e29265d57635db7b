package boot

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReleaseImagePages gives back the pages of vminitd's own executable that it
// mapped while starting (the kernel maps a binary's pages in chunks as they
// are first touched, so a Go start-up touches most of it): its read-only
// mappings of the binary get MADV_DONTNEED. The pages stay in the page
// cache, and whatever the agent runs later maps them again at the cost of a
// minor fault, so its resident set is then what it really uses. Writable
// mappings (the data segment) are never touched: dropping those would lose
// their contents.
func ReleaseImagePages() error {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return err
	}
	defer f.Close()
	ranges, err := readOnlyMappings(bufio.NewScanner(f), exe)
	if err != nil {
		return err
	}
	for _, r := range ranges {
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, r[0], r[1]-r[0], unix.MADV_DONTNEED); e != 0 {
			return fmt.Errorf("madvise %#x-%#x: %w", r[0], r[1], e)
		}
	}
	return nil
}

// readOnlyMappings lists the [start, end) of every mapping of path in a
// /proc/PID/maps listing that is not writable.
func readOnlyMappings(s *bufio.Scanner, path string) ([][2]uintptr, error) {
	var out [][2]uintptr
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) < 6 || f[5] != path || strings.Contains(f[1], "w") {
			continue
		}
		start, end, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("bad maps line %q", s.Text())
		}
		a, err := strconv.ParseUint(start, 16, 64)
		if err != nil {
			return nil, err
		}
		b, err := strconv.ParseUint(end, 16, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]uintptr{uintptr(a), uintptr(b)})
	}
	return out, s.Err()
}
