package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A container's VM has its own disks, so the container's block I/O is that
// of the block devices mounted for it (its rootfs disk): the kernel's
// per-device counters in /sys/class/block/<dev>/stat. (The guest kernel has
// no io cgroup controller; one container per VM needs none.)

// sectorBytes is the unit of the stat file's sector counts, whatever the
// device's own block size.
const sectorBytes = 512

// parseBlockStat reads the sectors read and written from a block device's
// stat file (Documentation/block/stat.rst: fields 3 and 7).
func parseBlockStat(s string) (readSectors, writeSectors uint64, err error) {
	f := strings.Fields(s)
	if len(f) < 7 {
		return 0, 0, fmt.Errorf("a block stat line has %d fields, want at least 7", len(f))
	}
	if readSectors, err = strconv.ParseUint(f[2], 10, 64); err != nil {
		return 0, 0, err
	}
	if writeSectors, err = strconv.ParseUint(f[6], 10, 64); err != nil {
		return 0, 0, err
	}
	return readSectors, writeSectors, nil
}

// blockIO sums the bytes read and written by the named devices ("vdb")
// under sysBlock (/sys/class/block).
func blockIO(sysBlock string, devices []string) (read, written uint64, err error) {
	for _, d := range devices {
		b, err := os.ReadFile(filepath.Join(sysBlock, d, "stat"))
		if err != nil {
			return 0, 0, err
		}
		r, w, err := parseBlockStat(string(b))
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", d, err)
		}
		read += r * sectorBytes
		written += w * sectorBytes
	}
	return read, written, nil
}
