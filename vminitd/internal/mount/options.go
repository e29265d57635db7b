// Package mount mounts filesystems: `mount -o` style option parsing, a mount
// helper that handles the multi-step cases (bind + flags, propagation), and a
// mount-point check.
package mount

import (
	"strings"

	"golang.org/x/sys/unix"
)

// Options is a parsed `mount -o` option list.
type Options struct {
	// Flags for the mount(2) call itself.
	Flags uintptr
	// Propagation flags (MS_SHARED, MS_PRIVATE, ...), which the kernel only
	// accepts in a call of their own, after the mount exists.
	Propagation uintptr
	// Data is the filesystem-specific rest, comma-joined, for mount(2)'s data.
	Data string
}

type flagOpt struct {
	clear bool
	flag  uintptr
}

var flagOpts = map[string]flagOpt{
	"defaults":      {false, 0},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"suid":          {true, unix.MS_NOSUID},
	"nosuid":        {false, unix.MS_NOSUID},
	"dev":           {true, unix.MS_NODEV},
	"nodev":         {false, unix.MS_NODEV},
	"exec":          {true, unix.MS_NOEXEC},
	"noexec":        {false, unix.MS_NOEXEC},
	"sync":          {false, unix.MS_SYNCHRONOUS},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"remount":       {false, unix.MS_REMOUNT},
	"mand":          {false, unix.MS_MANDLOCK},
	"nomand":        {true, unix.MS_MANDLOCK},
	"atime":         {true, unix.MS_NOATIME},
	"noatime":       {false, unix.MS_NOATIME},
	"diratime":      {true, unix.MS_NODIRATIME},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"relatime":      {false, unix.MS_RELATIME},
	"norelatime":    {true, unix.MS_RELATIME},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"silent":        {false, unix.MS_SILENT},
	"loud":          {true, unix.MS_SILENT},
	"bind":          {false, unix.MS_BIND},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
}

var propagationOpts = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// ParseOptions parses mount options. Each element may itself be a
// comma-separated list, as `mount -o` takes it. Options that are not mount
// flags are passed to the filesystem in Data, in order.
func ParseOptions(options []string) Options {
	var o Options
	var data []string
	for _, group := range options {
		for _, opt := range strings.Split(group, ",") {
			opt = strings.TrimSpace(opt)
			if opt == "" {
				continue
			}
			if f, ok := flagOpts[opt]; ok {
				if f.clear {
					o.Flags &^= f.flag
				} else {
					o.Flags |= f.flag
				}
				continue
			}
			if p, ok := propagationOpts[opt]; ok {
				o.Propagation |= p
				continue
			}
			data = append(data, opt)
		}
	}
	o.Data = strings.Join(data, ",")
	return o
}
