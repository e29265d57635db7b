// Package user resolves Docker's `-u` user specs (name, uid, name:group,
// uid:gid, ...) against a container's own /etc/passwd and /etc/group, the
// way runc and moby do, and fills the environment variables that depend on
// the user (HOME) or that Docker always provides (PATH, TERM).
package user

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Passwd is one /etc/passwd entry.
type Passwd struct {
	Name     string
	Password string
	UID      uint32
	GID      uint32
	Gecos    string
	Home     string
	Shell    string
}

// Group is one /etc/group entry.
type Group struct {
	Name     string
	Password string
	GID      uint32
	Members  []string
}

// maxLine bounds one line of a database file. The files come from an
// untrusted image; a longer line is an error rather than unbounded memory.
const maxLine = 1 << 20

// ParsePasswd reads passwd(5) entries from r and returns those keep accepts
// (all of them when keep is nil), in file order. Lines are skipped the way
// glibc's files backend skips them: blank lines, comments (first non-blank
// character '#'), NIS compat entries (name starting with '+' or '-'), and
// malformed lines (fewer than four fields, an empty name, or a uid or gid
// that is not a decimal id; see parseID). Missing trailing fields are empty,
// and the shell is the rest of the line, colons included. It fails only when
// reading fails or a line is longer than 1 MiB.
func ParsePasswd(r io.Reader, keep func(Passwd) bool) ([]Passwd, error) {
	var out []Passwd
	err := eachLine(r, func(line string) {
		f := strings.SplitN(line, ":", 7)
		if len(f) < 4 || !validName(f[0]) {
			return
		}
		uid, ok1 := parseFileID(f[2])
		gid, ok2 := parseFileID(f[3])
		if !ok1 || !ok2 {
			return
		}
		for len(f) < 7 {
			f = append(f, "")
		}
		p := Passwd{Name: f[0], Password: f[1], UID: uid, GID: gid, Gecos: f[4], Home: f[5], Shell: f[6]}
		if keep == nil || keep(p) {
			out = append(out, p)
		}
	})
	return out, err
}

// ParseGroup reads group(5) entries from r and returns those keep accepts
// (all of them when keep is nil), in file order. Lines are skipped as in
// ParsePasswd; a group line needs at least three fields (name, password,
// gid). Members are the comma-separated fourth field, blanks trimmed and
// empty names dropped.
func ParseGroup(r io.Reader, keep func(Group) bool) ([]Group, error) {
	var out []Group
	err := eachLine(r, func(line string) {
		f := strings.SplitN(line, ":", 4)
		if len(f) < 3 || !validName(f[0]) {
			return
		}
		gid, ok := parseFileID(f[2])
		if !ok {
			return
		}
		g := Group{Name: f[0], Password: f[1], GID: gid}
		if len(f) == 4 {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.Members = append(g.Members, m)
				}
			}
		}
		if keep == nil || keep(g) {
			out = append(out, g)
		}
	})
	return out, err
}

// eachLine calls fn with every line of r that is not blank or a comment,
// leading blanks removed (as glibc does before parsing a line).
func eachLine(r io.Reader, fn func(string)) error {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), maxLine)
	for s.Scan() {
		line := strings.TrimLeft(s.Text(), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		fn(line)
	}
	return s.Err()
}

// validName rejects empty names and NIS compat entries ("+", "+name",
// "-name", "+@netgroup"), which refer to a directory service we don't have.
func validName(name string) bool {
	return name != "" && name[0] != '+' && name[0] != '-'
}

// parseFileID parses a uid or gid field of a database file: decimal digits
// only (ParseUint takes no sign, blank or underscore), fitting 32 bits, and
// not 2^32-1, which is (uid_t)-1, "no change" to setresuid(2). Wider than
// what a user spec may say (see parseID): files on real systems do hold ids
// such as 4294967294 (an old nfsnobody).
func parseFileID(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}
