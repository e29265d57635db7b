package user

import (
	"bufio"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParsePasswd(t *testing.T) {
	in := strings.Join([]string{
		"# comment",
		"",
		"   ",
		"root:x:0:0:root:/root:/bin/sh",
		"  \tdaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin", // leading blanks skipped, as glibc does
		"   # indented comment",
		"short:x:0:0",                 // four fields: the rest empty (glibc)
		"odd:x:5:5:a:b:/bin/sh:extra", // the shell is the rest of the line
		"nfs:x:4294967294:4294967294::/:",
		"+",                         // NIS compat entries are ignored
		"+nis:x:0:0::/:/bin/sh",     //
		"-banned:x:0:0::/:/bin/sh",  //
		"three:x:0",                 // too short
		":x:0:0::/:",                // empty name
		"alpha:x:abc:0::/:",         // non-numeric uid
		"empty:x::0::/:",            // empty uid is not 0
		"neg:x:-1:0::/:",            // signs are not digits
		"plus:x:+1:0::/:",           //
		"minus1:x:4294967295:0::/:", // (uid_t)-1
		"huge:x:4294967296:0::/:",   // over 32 bits
		"gid:x:0:x::/:",             // non-numeric gid
		"last:x:7:8:Last User:/home/last:/bin/zsh",
	}, "\n")
	got, err := ParsePasswd(strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Passwd{
		{Name: "root", Password: "x", UID: 0, GID: 0, Gecos: "root", Home: "/root", Shell: "/bin/sh"},
		{Name: "daemon", Password: "x", UID: 1, GID: 1, Gecos: "daemon", Home: "/usr/sbin", Shell: "/usr/sbin/nologin"},
		{Name: "short", Password: "x"},
		{Name: "odd", Password: "x", UID: 5, GID: 5, Gecos: "a", Home: "b", Shell: "/bin/sh:extra"},
		{Name: "nfs", Password: "x", UID: 4294967294, GID: 4294967294, Home: "/"},
		{Name: "last", Password: "x", UID: 7, GID: 8, Gecos: "Last User", Home: "/home/last", Shell: "/bin/zsh"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestParsePasswdFilter(t *testing.T) {
	in := "a:x:1:1::/:\nb:x:2:2::/:\nc:x:2:3::/:\n"
	got, err := ParsePasswd(strings.NewReader(in), func(p Passwd) bool { return p.UID == 2 })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "b" || got[1].Name != "c" {
		t.Fatalf("got %+v", got)
	}
}

func TestParseGroup(t *testing.T) {
	in := strings.Join([]string{
		"# groups",
		"root:x:0:root",
		"wheel:x:10:root, bob ,,alice", // blanks trimmed, empty names dropped
		"nomembers:x:20:",
		"nofield:x:21", // three fields are enough
		"+:::",         // NIS
		"+nis:x:30:bob",
		"short:x",        // too short
		"bad:x:z:",       // non-numeric gid
		"colon:x:40:a:b", // members are the rest of the line
	}, "\n")
	got, err := ParseGroup(strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Group{
		{Name: "root", Password: "x", GID: 0, Members: []string{"root"}},
		{Name: "wheel", Password: "x", GID: 10, Members: []string{"root", "bob", "alice"}},
		{Name: "nomembers", Password: "x", GID: 20},
		{Name: "nofield", Password: "x", GID: 21},
		{Name: "colon", Password: "x", GID: 40, Members: []string{"a:b"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
	bob, err := ParseGroup(strings.NewReader(in), func(g Group) bool {
		for _, m := range g.Members {
			if m == "bob" {
				return true
			}
		}
		return false
	})
	if err != nil || len(bob) != 1 || bob[0].Name != "wheel" {
		t.Fatalf("filter: %+v %v", bob, err)
	}
}

func TestParseLineTooLong(t *testing.T) {
	in := "a:x:1:1::/:\n" + "b:x:2:2:" + strings.Repeat("g", maxLine) + ":/:\n"
	_, err := ParsePasswd(strings.NewReader(in), nil)
	if !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("got %v, want %v", err, bufio.ErrTooLong)
	}
}
