// Package netconf configures the guest's network: links, addresses and
// routes over rtnetlink (hand-built messages: the three requests the agent
// makes do not warrant a netlink library), and the resolv.conf and hosts
// files of a container.
package netconf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// LinkUp sets the link called name up.
func LinkUp(name string) error {
	if err := checkLinkName(name); err != nil {
		return err
	}
	return request(unix.RTM_NEWLINK, 0, linkUpBody(name), "set link "+name+" up")
}

// AddAddress adds cidr ("10.0.0.2/24": the address and its prefix length)
// to the link called link.
func AddAddress(link, cidr string) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return errdefs.InvalidArgumentf("malformed address %q: want an address and prefix length, e.g. 10.0.0.2/24", cidr)
	}
	index, err := linkIndex(link)
	if err != nil {
		return err
	}
	return request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, addrBody(index, p), "add address "+cidr+" to "+link)
}

// Route is a route of the main table.
type Route struct {
	// Destination; the zero prefix (with Default) for the default route.
	Destination netip.Prefix
	Gateway     netip.Addr
	Link        string
}

// ParseRoute checks a route's parts: destination a CIDR with no host bits,
// or "" or "default"; gateway an address or ""; at least one of gateway and
// link; the same family throughout.
func ParseRoute(destination, gateway, link string) (Route, error) {
	var r Route
	var err error
	if gateway != "" {
		if r.Gateway, err = netip.ParseAddr(gateway); err != nil {
			return r, errdefs.InvalidArgumentf("malformed gateway %q", gateway)
		}
		r.Gateway = r.Gateway.Unmap()
	}
	switch destination {
	case "", "default":
		if !r.Gateway.IsValid() || r.Gateway.Is4() {
			r.Destination = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		} else {
			r.Destination = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
	default:
		if r.Destination, err = netip.ParsePrefix(destination); err != nil {
			return r, errdefs.InvalidArgumentf("malformed route destination %q: want a CIDR, e.g. 10.0.0.0/24, or default", destination)
		}
		if r.Destination != r.Destination.Masked() {
			return r, errdefs.InvalidArgumentf("route destination %q has host bits set (did you mean %s?)", destination, r.Destination.Masked())
		}
	}
	if r.Gateway.IsValid() && r.Gateway.Is4() != r.Destination.Addr().Is4() {
		return r, errdefs.InvalidArgumentf("gateway %s and destination %s are of different address families", gateway, r.Destination)
	}
	if !r.Gateway.IsValid() && link == "" {
		return r, errdefs.InvalidArgumentf("a route needs a gateway, a link, or both")
	}
	r.Link = link
	return r, nil
}

// AddRoute adds r to the main table.
func AddRoute(r Route) error {
	index := uint32(0)
	if r.Link != "" {
		var err error
		if index, err = linkIndex(r.Link); err != nil {
			return err
		}
	}
	return request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, routeBody(r, index), "add route to "+r.Destination.String())
}

func checkLinkName(name string) error {
	if name == "" || len(name) >= unix.IFNAMSIZ || strings.ContainsAny(name, "/: \t\n\x00") || name == "." || name == ".." {
		return errdefs.InvalidArgumentf("malformed link name %q", name)
	}
	return nil
}

// linkIndex looks a link up by name (SIOCGIFINDEX).
func linkIndex(name string) (uint32, error) {
	if err := checkLinkName(name); err != nil {
		return 0, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, errdefs.InvalidArgumentf("malformed link name %q", name)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, errdefs.Internalf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return 0, errdefs.NotFoundf("no link %q", name)
		}
		return 0, errdefs.Internalf("look up link %q: %w", name, err)
	}
	return ifr.Uint32(), nil
}

// The bodies of the three requests: a fixed header, then attributes.

func linkUpBody(name string) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	// ifi_family AF_UNSPEC, ifi_index 0 (the kernel finds the link by its
	// IFLA_IFNAME), ifi_flags and ifi_change IFF_UP.
	binary.NativeEndian.PutUint32(b[8:], unix.IFF_UP)
	binary.NativeEndian.PutUint32(b[12:], unix.IFF_UP)
	return appendAttr(b, unix.IFLA_IFNAME, append([]byte(name), 0))
}

func addrBody(index uint32, p netip.Prefix) []byte {
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = family(p.Addr())
	b[1] = byte(p.Bits())
	// ifa_flags 0, ifa_scope RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(b[4:], index)
	addr := p.Addr().AsSlice()
	b = appendAttr(b, unix.IFA_LOCAL, addr)
	return appendAttr(b, unix.IFA_ADDRESS, addr)
}

func routeBody(r Route, index uint32) []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = family(r.Destination.Addr())
	b[1] = byte(r.Destination.Bits())
	b[4] = unix.RT_TABLE_MAIN
	b[5] = unix.RTPROT_BOOT
	b[6] = unix.RT_SCOPE_UNIVERSE
	if !r.Gateway.IsValid() {
		b[6] = unix.RT_SCOPE_LINK // directly reachable on the link
	}
	b[7] = unix.RTN_UNICAST
	if r.Destination.Bits() > 0 {
		b = appendAttr(b, unix.RTA_DST, r.Destination.Addr().AsSlice())
	}
	if r.Gateway.IsValid() {
		b = appendAttr(b, unix.RTA_GATEWAY, r.Gateway.AsSlice())
	}
	if index != 0 {
		b = appendAttr(b, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, index))
	}
	return b
}

func family(a netip.Addr) byte {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// appendAttr appends one rtattr (length, type, value), padded to 4 bytes.
func appendAttr(b []byte, typ uint16, value []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofRtAttr+len(value)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, value...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// message frames body as one netlink request asking for an acknowledgement.
func message(typ uint16, flags uint16, seq uint32, body []byte) []byte {
	b := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return append(b, body...)
}

// ackError reads the kernel's answer to request seq from one datagram: nil
// for an acknowledgement, the errno it carries otherwise; done false when
// the datagram holds no answer to seq.
func ackError(msg []byte, seq uint32) (err error, done bool) {
	for len(msg) >= unix.SizeofNlMsghdr {
		l := binary.NativeEndian.Uint32(msg[0:])
		if l < unix.SizeofNlMsghdr || int(l) > len(msg) {
			return errors.New("malformed netlink answer"), true
		}
		typ := binary.NativeEndian.Uint16(msg[4:])
		if binary.NativeEndian.Uint32(msg[8:]) == seq && typ == unix.NLMSG_ERROR {
			if l < unix.SizeofNlMsghdr+4 {
				return errors.New("short netlink error message"), true
			}
			if errno := -int32(binary.NativeEndian.Uint32(msg[unix.SizeofNlMsghdr:])); errno != 0 {
				return unix.Errno(errno), true
			}
			return nil, true
		}
		msg = msg[(l+3)&^3:]
	}
	return nil, false
}

// request sends one request to the kernel (in the calling thread's network
// namespace) and waits for its acknowledgement.
func request(typ, flags uint16, body []byte, what string) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return errdefs.Internalf("%s: netlink socket: %w", what, err)
	}
	defer unix.Close(fd)
	const seq = 1 // one request per socket
	if err := unix.Sendto(fd, message(typ, flags, seq, body), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return errdefs.Internalf("%s: netlink send: %w", what, err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return errdefs.Internalf("%s: netlink receive: %w", what, err)
		}
		if err, done := ackError(buf[:n], seq); done {
			return netlinkError(what, err)
		}
	}
}

// netlinkError gives the kernel's answer its code.
func netlinkError(what string, err error) error {
	var errno unix.Errno
	if err == nil {
		return nil
	}
	if !errors.As(err, &errno) {
		return errdefs.Internalf("%s: %w", what, err)
	}
	switch errno {
	case unix.ENODEV:
		return errdefs.NotFoundf("%s: no such link", what)
	case unix.EEXIST:
		return errdefs.Existsf("%s: already there", what)
	case unix.EINVAL, unix.ENETUNREACH, unix.EHOSTUNREACH, unix.EADDRNOTAVAIL, unix.ERANGE, unix.ESRCH:
		return errdefs.InvalidArgumentf("%s: %v", what, errno)
	case unix.EAFNOSUPPORT, unix.EOPNOTSUPP:
		return errdefs.Unsupportedf("%s: %v", what, errno)
	}
	return errdefs.Internalf("%s: %w", what, errno)
}
