package netconf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

func expectCode(t *testing.T, err error, code errdefs.Code) {
	t.Helper()
	if !errdefs.Is(err, code) {
		t.Fatalf("got %v (%s), want %s", err, errdefs.CodeOf(err), code)
	}
}

func TestResolvConf(t *testing.T) {
	b, err := ResolvConf([]string{"192.168.64.1", "fd00::1"}, []string{"example.com", "corp."}, []string{"ndots:2", "edns0"})
	want := "nameserver 192.168.64.1\nnameserver fd00::1\nsearch example.com corp.\noptions ndots:2 edns0\n"
	if err != nil || string(b) != want {
		t.Fatalf("%q %v", b, err)
	}
	if b, err := ResolvConf(nil, nil, nil); err != nil || len(b) != 0 {
		t.Fatalf("empty: %q %v", b, err)
	}
	bad := []struct{ ns, search, options []string }{
		{ns: []string{"8.8.8.8\nnameserver 1.1.1.1"}},
		{ns: []string{"dns.google"}},
		{ns: []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"}},
		{search: []string{"a b"}},
		{search: []string{"-bad.com"}},
		{search: []string{""}},
		{options: []string{"ndots:1 rotate"}},
		{options: []string{""}},
	}
	for _, c := range bad {
		_, err := ResolvConf(c.ns, c.search, c.options)
		expectCode(t, err, errdefs.InvalidArgument)
	}
}

func TestHosts(t *testing.T) {
	b, err := Hosts([]HostsEntry{{"127.0.0.1", []string{"localhost"}}, {"::1", []string{"localhost", "ip6-localhost"}}, {"192.168.64.3", []string{"web", "web.local"}}})
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n192.168.64.3\tweb web.local\n"
	if err != nil || string(b) != want {
		t.Fatalf("%q %v", b, err)
	}
	for _, e := range []HostsEntry{{"300.1.1.1", []string{"x"}}, {"10.0.0.1", nil}, {"10.0.0.1", []string{"x y"}}, {"10.0.0.1", []string{"x\n10.0.0.2 evil"}}} {
		_, err := Hosts([]HostsEntry{e})
		expectCode(t, err, errdefs.InvalidArgument)
	}
}

func TestParseRoute(t *testing.T) {
	r, err := ParseRoute("default", "10.0.0.1", "")
	if err != nil || r.Destination != netip.MustParsePrefix("0.0.0.0/0") || r.Gateway != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = ParseRoute("", "fd00::1", "eth0")
	if err != nil || r.Destination != netip.MustParsePrefix("::/0") || r.Link != "eth0" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := ParseRoute("10.1.0.0/16", "", "lo"); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][3]string{
		{"10.1.0.0/16", "", ""},             // neither gateway nor link
		{"10.1.0.5/16", "", "lo"},           // host bits
		{"10.1.0.0", "", "lo"},              // no prefix length
		{"10.1.0.0/16", "fd00::1", ""},      // mixed families
		{"10.1.0.0/16", "10.0.0.256", "lo"}, // bad gateway
	} {
		_, err := ParseRoute(c[0], c[1], c[2])
		expectCode(t, err, errdefs.InvalidArgument)
	}
}

// The bytes of each request, field by field as rtnetlink(7) lays them out.
func TestMessages(t *testing.T) {
	ne := binary.NativeEndian
	b := message(unix.RTM_NEWLINK, 0, 7, linkUpBody("lo"))
	if int(ne.Uint32(b)) != len(b) || ne.Uint16(b[4:]) != unix.RTM_NEWLINK || ne.Uint16(b[6:]) != unix.NLM_F_REQUEST|unix.NLM_F_ACK || ne.Uint32(b[8:]) != 7 {
		t.Fatalf("header % x", b[:16])
	}
	body := b[unix.SizeofNlMsghdr:]
	if ne.Uint32(body[8:]) != unix.IFF_UP || ne.Uint32(body[12:]) != unix.IFF_UP {
		t.Fatalf("ifinfomsg % x", body[:16])
	}
	// IFLA_IFNAME "lo\0", length 4+3, padded to 8.
	if attr := body[unix.SizeofIfInfomsg:]; !bytes.Equal(attr, []byte{7, 0, unix.IFLA_IFNAME, 0, 'l', 'o', 0, 0}) || len(b)%4 != 0 {
		t.Fatalf("attr % x", attr)
	}

	a := addrBody(3, netip.MustParsePrefix("10.99.0.1/24"))
	if a[0] != unix.AF_INET || a[1] != 24 || ne.Uint32(a[4:]) != 3 {
		t.Fatalf("ifaddrmsg % x", a[:8])
	}
	attrs := a[unix.SizeofIfAddrmsg:]
	want := []byte{8, 0, unix.IFA_LOCAL, 0, 10, 99, 0, 1, 8, 0, unix.IFA_ADDRESS, 0, 10, 99, 0, 1}
	if !bytes.Equal(attrs, want) {
		t.Fatalf("addr attrs % x", attrs)
	}

	r, _ := ParseRoute("10.98.0.0/24", "", "lo")
	rb := routeBody(r, 1)
	if rb[0] != unix.AF_INET || rb[1] != 24 || rb[4] != unix.RT_TABLE_MAIN || rb[6] != unix.RT_SCOPE_LINK || rb[7] != unix.RTN_UNICAST {
		t.Fatalf("rtmsg % x", rb[:unix.SizeofRtMsg])
	}
	want = []byte{8, 0, unix.RTA_DST, 0, 10, 98, 0, 0, 8, 0, unix.RTA_OIF, 0}
	want = ne.AppendUint32(want, 1)
	if !bytes.Equal(rb[unix.SizeofRtMsg:], want) {
		t.Fatalf("route attrs % x", rb[unix.SizeofRtMsg:])
	}
	r, _ = ParseRoute("default", "fd00::1", "")
	rb = routeBody(r, 0)
	if rb[0] != unix.AF_INET6 || rb[1] != 0 || rb[6] != unix.RT_SCOPE_UNIVERSE || len(rb) != unix.SizeofRtMsg+4+16 || ne.Uint16(rb[unix.SizeofRtMsg+2:]) != unix.RTA_GATEWAY {
		t.Fatalf("default route % x", rb)
	}
}

func TestAckError(t *testing.T) {
	ack := func(seq uint32, errno int32) []byte {
		// The error code, then the header of the request it answers.
		return message(unix.NLMSG_ERROR, 0, seq, append(ne32(-errno), make([]byte, unix.SizeofNlMsghdr)...))
	}
	if err, done := ackError(ack(5, 0), 5); err != nil || !done {
		t.Fatalf("ack: %v %v", err, done)
	}
	if err, done := ackError(ack(5, int32(unix.EEXIST)), 5); err != unix.EEXIST || !done {
		t.Fatalf("EEXIST: %v %v", err, done)
	}
	if _, done := ackError(ack(4, 0), 5); done {
		t.Fatal("another request's answer taken")
	}
	if err, done := ackError(append(ack(4, 0), ack(5, int32(unix.ENODEV))...), 5); err != unix.ENODEV || !done {
		t.Fatalf("second message: %v %v", err, done)
	}
	expectCode(t, netlinkError("x", unix.ENODEV), errdefs.NotFound)
	expectCode(t, netlinkError("x", unix.EEXIST), errdefs.Exists)
}

func ne32(v int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(v)) }

// inNewNetns runs f on a thread of its own in a fresh network namespace (as
// root), so nothing touches the test machine's network. The thread is never
// unlocked: it ends with the goroutine.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	done := make(chan struct{})
	var skip string
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			skip = "cannot unshare the network namespace: " + err.Error()
			return
		}
		f()
	}()
	<-done
	if skip != "" {
		t.Skip(skip)
	}
}

func TestOnLoopback(t *testing.T) {
	var errs []string
	check := func(what string, err error, code errdefs.Code) {
		if code == "" && err != nil || code != "" && !errdefs.Is(err, code) {
			errs = append(errs, what+": "+errString(err)+", want "+string(code))
		}
	}
	var flags string
	var addrs, routes []byte
	inNewNetns(t, func() {
		check("link up", LinkUp("lo"), "")
		check("unknown link up", LinkUp("nope0"), errdefs.NotFound)
		check("bad name", LinkUp("a/b"), errdefs.InvalidArgument)
		check("add address", AddAddress("lo", "10.99.0.1/32"), "")
		check("again", AddAddress("lo", "10.99.0.1/32"), errdefs.Exists)
		check("unknown link", AddAddress("nope0", "10.99.0.2/32"), errdefs.NotFound)
		check("bad cidr", AddAddress("lo", "10.99.0.2"), errdefs.InvalidArgument)
		r, _ := ParseRoute("10.98.0.0/24", "", "lo")
		check("route on link", AddRoute(r), "")
		check("route again", AddRoute(r), errdefs.Exists)
		r, _ = ParseRoute("10.97.0.0/16", "10.98.0.5", "")
		check("route via gateway", AddRoute(r), "")
		r, _ = ParseRoute("10.96.0.0/16", "192.0.2.1", "")
		check("unreachable gateway", AddRoute(r), errdefs.InvalidArgument)
		r, _ = ParseRoute("default", "", "lo")
		check("default route", AddRoute(r), "")
		r, _ = ParseRoute("10.95.0.0/16", "", "nope0")
		check("route on unknown link", AddRoute(r), errdefs.NotFound)
		flags = linkFlags("lo")
		// thread-self: /proc/self/net is the main thread's namespace, not this one's.
		addrs, _ = os.ReadFile("/proc/thread-self/net/fib_trie")
		routes, _ = os.ReadFile("/proc/thread-self/net/route")
	})
	for _, e := range errs {
		t.Error(e)
	}
	if !strings.Contains(flags, "up") {
		t.Errorf("lo flags %q", flags)
	}
	if !bytes.Contains(addrs, []byte("10.99.0.1")) {
		t.Errorf("address missing from fib_trie:\n%s", addrs)
	}
	// /proc/net/route: destination and gateway in hex, little-endian.
	for _, want := range []string{"lo\t0000620A\t00000000", "lo\t0000610A\t0500620A", "lo\t00000000\t00000000"} {
		if !bytes.Contains(routes, []byte(want)) {
			t.Errorf("route %q missing:\n%s", want, routes)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// linkFlags reports "up" when the link is administratively up.
func linkFlags(name string) string {
	ifr, _ := unix.NewIfreq(name)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err.Error()
	}
	if ifr.Uint16()&unix.IFF_UP != 0 {
		return "up"
	}
	return "down"
}
