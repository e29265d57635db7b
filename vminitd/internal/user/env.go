package user

import "strings"

// DefaultPath is Docker's PATH for a process whose environment has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultTerm is Docker's TERM for a process with a terminal.
const DefaultTerm = "xterm"

// DefaultEnv returns env with what Docker adds when it is missing: HOME
// (id.Home, as runc sets it), PATH (DefaultPath) and, when the process has a
// terminal, TERM (DefaultTerm). A variable counts as set when env has any
// entry for it, even an empty one: a value the caller chose is never
// overridden. env itself is not modified; added entries go at the end.
func DefaultEnv(env []string, id Identity, tty bool) []string {
	defaults := [][2]string{{"HOME", id.Home}, {"PATH", DefaultPath}}
	if tty {
		defaults = append(defaults, [2]string{"TERM", DefaultTerm})
	}
	out := append([]string(nil), env...)
	for _, kv := range defaults {
		if !hasKey(env, kv[0]) {
			out = append(out, kv[0]+"="+kv[1])
		}
	}
	return out
}

// hasKey reports whether env has an entry KEY=... for key.
func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); ok && k == key {
			return true
		}
	}
	return false
}
