// Package archive copies files into and out of a container as tar streams,
// for `container cp` and `export`. It runs in a short-lived child of vminitd
// (`vminitd copy in|out ROOTFS PATH`, see Main) that has chrooted into the
// container's rootfs first, so every path, symlink and `..` resolves inside
// the container and nothing of the guest is reachable.
package archive

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Write archives src (absolute, inside the chroot). The top entry is src's
// base name; for a directory's contents ("/dir/." or "/", export) it is "./"
// and the contents follow without a prefix, as Docker writes them.
// Directories that are other mounts (proc, sys, dev...) are kept empty.
func Write(w io.Writer, src string) error {
	contents := src == "/" || strings.HasSuffix(src, "/.")
	src = path.Clean(src)
	fi, err := os.Lstat(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errdefs.NotFoundf("no such file or directory: %s", src)
		}
		return errdefs.Wrap(errdefs.Internal, err)
	}
	rootDev := devOf(fi)
	prefix := path.Base(src)
	if contents {
		if !fi.IsDir() {
			return errdefs.InvalidArgumentf("%s is not a directory", src)
		}
		prefix = ""
	}
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{} // dev+ino → first name, for hard links
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		name := path.Join(prefix, filepath.ToSlash(rel))
		if err := writeEntry(tw, p, name, info, links); err != nil {
			return err
		}
		// Another mount below the source: its directory, not its contents.
		if d.IsDir() && p != src && devOf(info) != rootDev {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return errdefs.Wrap(errdefs.Internal, err)
	}
	return tw.Close()
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Dev
	}
	return 0
}

func writeEntry(tw *tar.Writer, p, name string, info fs.FileInfo, links map[[2]uint64]string) error {
	target := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		target = t
	}
	if info.Mode()&fs.ModeSocket != 0 {
		return nil // a socket cannot be archived
	}
	hdr, err := tar.FileInfoHeader(info, target)
	if err != nil {
		return err
	}
	hdr.Name = name
	hdr.Format = tar.FormatPAX
	if info.IsDir() {
		hdr.Name += "/"
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		hdr.Uname, hdr.Gname = "", ""
		if info.Mode().IsRegular() && st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				links[key] = name
			}
		}
		if info.Mode()&(fs.ModeDevice|fs.ModeCharDevice) != 0 {
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(tw, f, hdr.Size)
	return err
}

// Extract unpacks a tar stream at dest with `docker cp` rules. When the
// archive holds a directory's contents (`cp dir/. ctr:dest`), dest is that
// directory, made if missing. Otherwise its top entry is the copied item:
// unpacked into dest when dest is a directory, else as dest itself (the top
// entry renamed) in dest's parent. Names are checked (no absolute, no ..),
// nothing is written through a symlink, and files belong to root, as Docker
// makes them.
func Extract(r io.Reader, dest string, contents bool) error {
	dest = path.Clean(dest)
	base, rename := dest, ""
	if contents {
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return errdefs.Internalf("make %s: %w", dest, err)
		}
	} else if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		rename = ""
	} else {
		base, rename = path.Dir(dest), path.Base(dest)
		if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
			return errdefs.NotFoundf("no such directory: %s", base)
		}
	}
	tr := tar.NewReader(r)
	var dirTimes []*tar.Header
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errdefs.InvalidArgumentf("bad archive: %v", err)
		}
		name, err := entryName(hdr.Name, rename)
		if err != nil {
			return err
		}
		target := path.Join(base, name)
		if err := noSymlinkParents(base, name); err != nil {
			return err
		}
		if err := create(tr, hdr, target, base, rename); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeDir {
			h := *hdr
			h.Name = target
			dirTimes = append(dirTimes, &h)
		}
	}
	// Directory times last: creating their entries changed them.
	for _, h := range dirTimes {
		_ = os.Chtimes(h.Name, h.AccessTime, h.ModTime)
	}
	return nil
}

// entryName validates an archive name and renames its first component when
// the copy takes dest's name.
func entryName(name, rename string) (string, error) {
	clean := strings.TrimSuffix(name, "/")
	if clean == "" || path.IsAbs(clean) {
		return "", errdefs.InvalidArgumentf("bad archive entry %q", name)
	}
	for _, c := range strings.Split(clean, "/") {
		if c == ".." {
			return "", errdefs.InvalidArgumentf("archive entry %q leaves the destination", name)
		}
	}
	clean = path.Clean(clean)
	if rename != "" {
		_, rest, _ := strings.Cut(clean, "/")
		clean = path.Join(rename, rest)
	}
	return clean, nil
}

// noSymlinkParents fails when any directory between base and base/name is a
// symlink: an archive must not write through one it planted.
func noSymlinkParents(base, name string) error {
	dir := base
	parts := strings.Split(name, "/")
	for _, c := range parts[:len(parts)-1] {
		dir = path.Join(dir, c)
		fi, err := os.Lstat(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return errdefs.Wrap(errdefs.Internal, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return errdefs.InvalidArgumentf("archive entry %q goes through the symlink %s", name, dir)
		}
	}
	return nil
}

func create(tr *tar.Reader, hdr *tar.Header, target, base, rename string) error {
	mode := os.FileMode(hdr.Mode) & os.ModePerm
	if err := os.MkdirAll(path.Dir(target), 0o755); err != nil {
		return errdefs.Wrap(errdefs.Internal, err)
	}
	if hdr.Typeflag != tar.TypeDir {
		if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
			if fi, statErr := os.Lstat(target); statErr == nil && fi.IsDir() {
				return errdefs.InvalidArgumentf("cannot replace the directory %s with a file", target)
			}
			return errdefs.Wrap(errdefs.Internal, err)
		}
	}
	var err error
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = os.Mkdir(target, mode)
		if errors.Is(err, fs.ErrExist) {
			err = nil
		}
	case tar.TypeReg:
		var f *os.File
		if f, err = os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode); err == nil {
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	case tar.TypeSymlink:
		err = os.Symlink(hdr.Linkname, target)
	case tar.TypeLink:
		var from string
		if from, err = entryName(hdr.Linkname, rename); err == nil {
			err = os.Link(path.Join(base, from), target)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		devMode := map[byte]uint32{tar.TypeChar: syscall.S_IFCHR, tar.TypeBlock: syscall.S_IFBLK, tar.TypeFifo: syscall.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		err = syscall.Mknod(target, devMode|uint32(mode), int(dev))
	default:
		return nil // other types (PAX globals and the like) carry no file
	}
	if err != nil {
		return errdefs.Internalf("create %s: %w", target, err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		_ = os.Chmod(target, os.FileMode(hdr.Mode)&os.ModePerm|setBits(hdr.Mode))
		if hdr.Typeflag != tar.TypeDir {
			_ = os.Chtimes(target, orNow(hdr.AccessTime, hdr.ModTime), hdr.ModTime)
		}
	}
	return nil
}

func setBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

func orNow(t, fallback time.Time) time.Time {
	if t.IsZero() {
		return fallback
	}
	return t
}

// Main is `vminitd copy in|in-contents|out ROOTFS PATH`: chroot into ROOTFS,
// then extract stdin at PATH (see Extract) or archive PATH to stdout. A failure is printed to
// stderr as "<code>\t<message>" for the parent to rebuild, and the exit
// status is 1.
func Main(args []string) int {
	err := run(args)
	if err == nil {
		return 0
	}
	_, _ = os.Stderr.WriteString(errdefs.Line(err))
	return 1
}

func run(args []string) error {
	if len(args) != 3 || (args[0] != "in" && args[0] != "in-contents" && args[0] != "out") {
		return errdefs.InvalidArgumentf("usage: vminitd copy in|in-contents|out ROOTFS PATH")
	}
	if err := syscall.Chroot(args[1]); err != nil {
		return errdefs.Internalf("chroot %s: %w", args[1], err)
	}
	if err := os.Chdir("/"); err != nil {
		return errdefs.Wrap(errdefs.Internal, err)
	}
	p := args[2]
	if !path.IsAbs(p) {
		return errdefs.InvalidArgumentf("path %q must be absolute", p)
	}
	if args[0] == "out" {
		return Write(os.Stdout, p)
	}
	return Extract(os.Stdin, p, args[0] == "in-contents")
}
