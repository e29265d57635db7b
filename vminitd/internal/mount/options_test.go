package mount

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want Options
	}{
		{"none", nil, Options{}},
		{"ro", []string{"ro"}, Options{Flags: unix.MS_RDONLY}},
		{"ro then rw", []string{"ro", "rw"}, Options{}},
		{"common", []string{"ro", "noatime", "nosuid", "nodev", "noexec"},
			Options{Flags: unix.MS_RDONLY | unix.MS_NOATIME | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC}},
		{"comma list", []string{"nosuid,nodev", "relatime"},
			Options{Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_RELATIME}},
		{"bind", []string{"bind", "ro"}, Options{Flags: unix.MS_BIND | unix.MS_RDONLY}},
		{"rbind", []string{"rbind"}, Options{Flags: unix.MS_BIND | unix.MS_REC}},
		{"remount", []string{"remount,ro"}, Options{Flags: unix.MS_REMOUNT | unix.MS_RDONLY}},
		{"data", []string{"mode=0755", "size=64m", "nosuid"},
			Options{Flags: unix.MS_NOSUID, Data: "mode=0755,size=64m"}},
		{"devpts", []string{"newinstance,ptmxmode=0666,mode=620,gid=5"},
			Options{Data: "newinstance,ptmxmode=0666,mode=620,gid=5"}},
		{"propagation", []string{"rbind", "rprivate"},
			Options{Flags: unix.MS_BIND | unix.MS_REC, Propagation: unix.MS_PRIVATE | unix.MS_REC}},
		{"defaults and blanks", []string{"defaults", "", " ,"}, Options{}},
		{"clearers", []string{"nosuid,suid,nodev,dev,noexec,exec,noatime,atime"}, Options{}},
		{"overlay", []string{"lowerdir=/a:/b,upperdir=/u,workdir=/w"},
			Options{Data: "lowerdir=/a:/b,upperdir=/u,workdir=/w"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseOptions(tt.in)
			if got != tt.want {
				t.Errorf("ParseOptions(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseMountInfo(t *testing.T) {
	const sample = `22 1 253:0 / / ro,relatime shared:1 - ext4 /dev/vda ro
23 22 0:5 / /dev rw,nosuid master:2 - devtmpfs devtmpfs rw,size=10k
40 22 0:40 / /run/with\040space rw - tmpfs tmp\040fs rw
`
	got, err := parseMountInfo(bufio.NewScanner(strings.NewReader(sample)))
	if err != nil {
		t.Fatal(err)
	}
	want := []MountInfo{
		{"/", "ext4", "/dev/vda"},
		{"/dev", "devtmpfs", "devtmpfs"},
		{"/run/with space", "tmpfs", "tmp fs"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d mounts: %+v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mount %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if unescape(`a\`) != `a\` || unescape(`a\04`) != `a\04` || unescape(`\134x`) != `\x` {
		t.Error("unescape edge cases")
	}
}

func TestIsMountPoint(t *testing.T) {
	if _, err := os.Stat("/proc/self/mountinfo"); err != nil {
		t.Skip("no /proc")
	}
	if ok, err := IsMountPoint("/"); err != nil || !ok {
		t.Errorf("/ is a mount point: %v %v", ok, err)
	}
	if ok, err := IsMountPoint(t.TempDir()); err != nil || ok {
		t.Errorf("temp dir is not a mount point: %v %v", ok, err)
	}
}
