package config

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		cmdline  string
		want     Config
		warnings int
	}{
		{"empty", "", Config{}, 0},
		{"unrelated", "console=ttyS0 reboot=t panic=-1 root=/dev/vda ro\n", Config{}, 0},
		{"all", "console=ttyS0 vminitd.log=2049 vminitd.debug=1 vminitd.poweroff=1 vminitd.hostname=box\n",
			Config{LogPort: 2049, Debug: true, PowerOff: true, Hostname: "box"}, 0},
		{"console", "vminitd.log=console", Config{}, 0},
		{"bootstrap", "vminitd.bootstrap=1026", Config{BootstrapPort: 1026}, 0},
		{"bad bootstrap", "vminitd.bootstrap=x", Config{}, 1},
		{"bare bool", "vminitd.debug vminitd.poweroff", Config{Debug: true, PowerOff: true}, 0},
		{"false", "vminitd.debug=0 vminitd.poweroff=no", Config{}, 0},
		{"last wins", "vminitd.hostname=a vminitd.hostname=b", Config{Hostname: "b"}, 0},
		{"quoted", `vminitd.hostname="my box" x="a b"`, Config{Hostname: "my box"}, 0},
		{"bad log", "vminitd.log=serial vminitd.debug=1", Config{Debug: true}, 1},
		{"zero port", "vminitd.log=0", Config{}, 1},
		{"bad bool", "vminitd.debug=maybe", Config{}, 1},
		{"unknown key", "vminitd.frobnicate=1", Config{}, 1},
		{"after dashdash", "vminitd.debug=1 -- vminitd.poweroff=1", Config{Debug: true}, 0},
		{"long hostname", "vminitd.hostname=" + string(make([]byte, 65)), Config{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings := Parse(tt.cmdline)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.cmdline, got, tt.want)
			}
			if len(warnings) != tt.warnings {
				t.Errorf("warnings = %q, want %d", warnings, tt.warnings)
			}
		})
	}
}

func TestSplitCmdline(t *testing.T) {
	got := SplitCmdline("  a b=\"c d\"\te \"f g\"=h\n")
	want := []string{"a", "b=c d", "e", "f g=h"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := SplitCmdline(""); len(got) != 0 {
		t.Fatalf("empty: got %q", got)
	}
	if got := SplitCmdline(`x=""`); !reflect.DeepEqual(got, []string{"x="}) {
		t.Fatalf("empty quoted value: got %q", got)
	}
}
