package netconf

import (
	"net/netip"
	"regexp"
	"strings"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// maxNameservers is the resolver's limit (MAXNS): more would be ignored.
const maxNameservers = 3

// hostname is a DNS name as resolv.conf and hosts take it: labels of
// letters, digits, "-" and "_", separated by dots, with a trailing dot
// allowed.
var hostname = regexp.MustCompile(`^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$`)

func checkHostname(what, name string) error {
	if len(name) > 253 || !hostname.MatchString(name) {
		return errdefs.InvalidArgumentf("malformed %s %q", what, name)
	}
	return nil
}

// ResolvConf renders resolv.conf: nameservers (addresses), search domains
// and options, each checked.
func ResolvConf(nameservers, search, options []string) ([]byte, error) {
	if len(nameservers) > maxNameservers {
		return nil, errdefs.InvalidArgumentf("%d nameservers: the resolver uses at most %d", len(nameservers), maxNameservers)
	}
	var b strings.Builder
	for _, ns := range nameservers {
		a, err := netip.ParseAddr(ns)
		if err != nil {
			return nil, errdefs.InvalidArgumentf("malformed nameserver address %q", ns)
		}
		b.WriteString("nameserver " + a.String() + "\n")
	}
	for _, d := range search {
		if err := checkHostname("search domain", d); err != nil {
			return nil, err
		}
	}
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	for _, o := range options {
		if o == "" || strings.ContainsAny(o, " \t\r\n#;\x00") {
			return nil, errdefs.InvalidArgumentf("malformed resolver option %q", o)
		}
	}
	if len(options) > 0 {
		b.WriteString("options " + strings.Join(options, " ") + "\n")
	}
	return []byte(b.String()), nil
}

// HostsEntry is one line of /etc/hosts.
type HostsEntry struct {
	IP        string
	Hostnames []string
}

// Hosts renders /etc/hosts from entries, in order, each checked.
func Hosts(entries []HostsEntry) ([]byte, error) {
	var b strings.Builder
	for _, e := range entries {
		a, err := netip.ParseAddr(e.IP)
		if err != nil {
			return nil, errdefs.InvalidArgumentf("malformed hosts address %q", e.IP)
		}
		if len(e.Hostnames) == 0 {
			return nil, errdefs.InvalidArgumentf("hosts entry %s has no hostname", e.IP)
		}
		for _, h := range e.Hostnames {
			if err := checkHostname("hostname", h); err != nil {
				return nil, err
			}
		}
		b.WriteString(a.String() + "\t" + strings.Join(e.Hostnames, " ") + "\n")
	}
	return []byte(b.String()), nil
}
