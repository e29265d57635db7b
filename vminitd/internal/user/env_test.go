package user

import (
	"reflect"
	"testing"
)

func TestDefaultEnv(t *testing.T) {
	bob := Identity{Name: "bob", UID: 1000, Home: "/home/bob"}
	tests := []struct {
		name string
		env  []string
		tty  bool
		want []string
	}{
		{"empty", nil, false, []string{"HOME=/home/bob", "PATH=" + DefaultPath}},
		{"tty", []string{"A=1"}, true, []string{"A=1", "HOME=/home/bob", "PATH=" + DefaultPath, "TERM=xterm"}},
		{"caller wins", []string{"PATH=/bin", "HOME=/x", "TERM=vt100"}, true, []string{"PATH=/bin", "HOME=/x", "TERM=vt100"}},
		{"empty values are set", []string{"HOME=", "PATH="}, false, []string{"HOME=", "PATH="}},
		{"prefixes and bare names are not", []string{"HOMEDIR=/h", "PATH"}, false, []string{"HOMEDIR=/h", "PATH", "HOME=/home/bob", "PATH=" + DefaultPath}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]string(nil), tt.env...)
			got := DefaultEnv(in, bob, tt.tty)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(in, tt.env) {
				t.Fatalf("input modified: %q", in)
			}
		})
	}
	// The input's spare capacity is not written to.
	env := make([]string, 1, 4)
	env[0] = "A=1"
	out := DefaultEnv(env, bob, false)
	out[0] = "changed"
	if env[0] != "A=1" || env[:2][1] != "" {
		t.Fatal("DefaultEnv shares the caller's array")
	}
}
