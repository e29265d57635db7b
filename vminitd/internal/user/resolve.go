package user

import (
	"bufio"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Identity is who a container process runs as.
type Identity struct {
	// Name is the passwd entry's name; empty for a uid with no entry.
	Name string
	UID  uint32
	GID  uint32
	// Groups is the list for setgroups(2): GID first, then every group of
	// /etc/group listing Name as a member, each once, in file order.
	Groups []uint32
	// Home is the entry's home directory, "/" when it has none.
	Home string
	// Shell is the entry's login shell, empty when unknown.
	Shell string
}

// The database files, as paths inside the rootfs.
const (
	passwdPath = "/etc/passwd"
	groupPath  = "/etc/group"
)

// MaxID is the largest uid or gid a user spec may give: runc's limit, which
// keeps ids positive in a signed 32-bit int and clear of (uid_t)-1.
const MaxID = 1<<31 - 1

// Resolve turns a Docker user spec into an Identity, reading the rootfs's
// own /etc/passwd and /etc/group (symlinks resolved inside rootfs; see
// openInRoot). spec is "", "user" or "user:group", where user is a name or
// a uid and group a name or a gid. The rules are runc's GetExecUser:
//
//   - "" is uid 0; its entry, if any, gives the name, gid, home and shell.
//   - A numeric user is always a uid, never a name. Its entry, if any, is
//     used as above; with none the identity is that uid with gid 0, home
//     "/" and no name. Numeric ids must be in 0..MaxID (invalidArgument).
//   - A user name must have an entry (notFound, `user "bob" not found in
//     /etc/passwd`); the first matching entry wins.
//   - An explicit group replaces the entry's gid: a gid is taken as is, a
//     name must be in /etc/group (notFound).
//   - A missing /etc/passwd or /etc/group is no error unless a name must be
//     looked up in it.
//
// One difference from runc: with an explicit group (user:group) runc sets
// only that group, while Resolve keeps the user's supplementary groups too.
// A process without a group its user belongs to gets around permissions
// that deny access by group (0604 owned by that group, say): the class of
// bug behind containerd's CVE-2023-25173, and, for the primary gid, moby's
// CVE-2022-36109, which is why GID is always in Groups.
func Resolve(rootfs, spec string) (Identity, error) {
	userArg, groupArg, _ := strings.Cut(spec, ":")
	uid, uidNumeric, err := parseID("uid", userArg)
	if err != nil {
		return Identity{}, err
	}
	gid, gidNumeric, err := parseID("gid", groupArg)
	if err != nil {
		return Identity{}, err
	}

	id := Identity{UID: uid, Home: "/"}
	entries, havePasswd, err := readDB(rootfs, passwdPath, func(f *os.File) ([]Passwd, error) {
		return ParsePasswd(f, func(p Passwd) bool {
			if userArg == "" || uidNumeric {
				return p.UID == uid
			}
			return p.Name == userArg
		})
	})
	if err != nil {
		return Identity{}, err
	}
	switch {
	case len(entries) > 0:
		e := entries[0]
		id.Name, id.UID, id.GID, id.Shell = e.Name, e.UID, e.GID, e.Shell
		if e.Home != "" {
			id.Home = e.Home
		}
	case userArg != "" && !uidNumeric:
		err := errdefs.NotFoundf("user %q not found in %s", userArg, passwdPath)
		if !havePasswd {
			err = errdefs.NotFoundf("user %q not found: the image has no %s", userArg, passwdPath)
		}
		return Identity{}, errdefs.WithHint(err, "use a numeric uid, or create the user in the image")
	}

	var groups []Group
	if (groupArg != "" && !gidNumeric) || id.Name != "" {
		var haveGroup bool
		groups, haveGroup, err = readDB(rootfs, groupPath, func(f *os.File) ([]Group, error) {
			return ParseGroup(f, func(g Group) bool {
				return (!gidNumeric && g.Name == groupArg) || (id.Name != "" && slices.Contains(g.Members, id.Name))
			})
		})
		if err != nil {
			return Identity{}, err
		}
		if groupArg != "" && !gidNumeric {
			i := slices.IndexFunc(groups, func(g Group) bool { return g.Name == groupArg })
			if i < 0 {
				err := errdefs.NotFoundf("group %q not found in %s", groupArg, groupPath)
				if !haveGroup {
					err = errdefs.NotFoundf("group %q not found: the image has no %s", groupArg, groupPath)
				}
				return Identity{}, errdefs.WithHint(err, "use a numeric gid, or create the group in the image")
			}
			gid = groups[i].GID
		}
	}
	if groupArg != "" {
		id.GID = gid
	}

	id.Groups = []uint32{id.GID}
	for _, g := range groups {
		if id.Name != "" && slices.Contains(g.Members, id.Name) && !slices.Contains(id.Groups, g.GID) {
			id.Groups = append(id.Groups, g.GID)
		}
	}
	return id, nil
}

// parseID reads the uid or gid part of a user spec: a decimal number
// (strconv.Atoi's syntax, so "-1" is an out-of-range id rather than a name)
// is numeric and must be in 0..MaxID; anything else, "" included, is not.
func parseID(kind, s string) (id uint32, numeric bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if errors.Is(err, strconv.ErrSyntax) {
		return 0, false, nil
	}
	if err != nil || v < 0 || v > MaxID {
		return 0, true, errdefs.InvalidArgumentf("%s %s is out of range (0 to %d)", kind, s, MaxID)
	}
	return uint32(v), true, nil
}

// readDB opens the database file name inside rootfs and parses it with
// parse. found is false, with no error, when the image has no such file.
func readDB[T any](rootfs, name string, parse func(*os.File) ([]T, error)) (entries []T, found bool, err error) {
	f, err := openInRoot(rootfs, name)
	var pe *os.PathError
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return nil, false, nil
	case errors.As(err, &pe) && (pe.Err == errNotRegular || pe.Err == unix.ELOOP):
		return nil, false, errdefs.InvalidArgumentf("%s in the image: %w", name, pe.Err)
	case err != nil:
		return nil, false, errdefs.Internalf("%s in the image: %w", name, err)
	}
	defer f.Close()
	entries, err = parse(f)
	switch {
	case errors.Is(err, bufio.ErrTooLong):
		return nil, true, errdefs.InvalidArgumentf("%s in the image has a line longer than %d bytes", name, maxLine)
	case err != nil:
		return nil, true, errdefs.Internalf("read %s in the image: %w", name, err)
	}
	return entries, true, nil
}
