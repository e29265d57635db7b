// Package relay copies connections between a unix socket in the guest and
// host vsock ports: the guest listening on a socket and dialing the host for
// each connection (an SSH agent socket for a container), or listening on a
// vsock port and dialing a socket for each connection the host makes (a
// daemon's socket reached from the host).
package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/files"
)

// Direction says which side listens.
type Direction int

const (
	// GuestListen: a unix socket in the guest, dialing a host port.
	GuestListen Direction = iota + 1
	// GuestDial: a guest vsock port, dialing a unix socket in the guest.
	GuestDial
)

// dialTimeout bounds one connection's dial of either side.
const dialTimeout = 10 * time.Second

// Spec is one relay.
type Spec struct {
	ID string
	// Rootfs confines Path (see files.OpenRoot); "" is the guest root.
	Rootfs    string
	Path      string
	Port      uint32
	Direction Direction
	// Mode of the socket made for GuestListen; 0: 0600.
	Mode uint32
}

// Manager runs relays by id.
type Manager struct {
	log *slog.Logger
	// dialHost connects to a host vsock port; listen listens on a guest one.
	dialHost func(ctx context.Context, port uint32) (net.Conn, error)
	listen   func(port uint32) (net.Listener, error)

	mu     sync.Mutex
	relays map[string]*relay
}

// NewManager makes a manager dialing and listening with the functions given.
func NewManager(log *slog.Logger, dialHost func(context.Context, uint32) (net.Conn, error), listen func(uint32) (net.Listener, error)) *Manager {
	return &Manager{log: log, dialHost: dialHost, listen: listen, relays: map[string]*relay{}}
}

type relay struct {
	spec     Spec
	listener net.Listener
	root     *files.Root
	// dir holds the socket of a GuestListen relay; unlinking it on close
	// goes through this descriptor too.
	dir *unixDir

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// unixDir is the directory of a GuestListen socket, held open.
type unixDir struct {
	fd   *os.File
	base string
}

func (d *unixDir) path() string {
	return "/proc/self/fd/" + strconv.Itoa(int(d.fd.Fd())) + "/" + d.base
}

// Start checks s and starts the relay.
func (m *Manager) Start(s Spec) error {
	if err := check(s); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.relays[s.ID]; ok {
		return errdefs.Existsf("relay %q is already running", s.ID)
	}
	root, err := files.OpenRoot(s.Rootfs)
	if err != nil {
		return err
	}
	r := &relay{spec: s, root: root, conns: map[net.Conn]struct{}{}}
	if s.Direction == GuestListen {
		err = r.listenUnix()
	} else {
		err = r.listenVsock(m.listen)
	}
	if err != nil {
		r.release()
		return err
	}
	m.relays[s.ID] = r
	r.wg.Add(1)
	go m.serve(r)
	m.log.Info("relay started", "id", s.ID, "path", s.Path, "port", s.Port, "direction", s.Direction)
	return nil
}

func check(s Spec) error {
	switch {
	case s.ID == "":
		return errdefs.InvalidArgumentf("a relay needs an id")
	case s.Path == "":
		return errdefs.InvalidArgumentf("a relay needs a socket path")
	case s.Port == 0:
		return errdefs.InvalidArgumentf("a relay needs a vsock port")
	case s.Direction != GuestListen && s.Direction != GuestDial:
		return errdefs.InvalidArgumentf("a relay needs a direction (guest listen or guest dial)")
	}
	_, err := files.Rel(s.Path)
	return err
}

// listenUnix binds the socket in its directory, reached through a held
// descriptor so that the path resolves inside the rootfs, and sets its mode
// through an O_PATH descriptor of the socket itself, never by name.
func (r *relay) listenUnix() error {
	dir, base, err := r.root.OpenParent(r.spec.Path)
	if err != nil {
		return err
	}
	r.dir = &unixDir{fd: dir, base: base}
	if len(r.dir.path()) >= len(unix.RawSockaddrUnix{}.Path) {
		return errdefs.InvalidArgumentf("socket name %q is too long", base)
	}
	l, err := net.Listen("unix", r.dir.path())
	if err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return errdefs.Existsf("%s exists already", r.spec.Path)
		}
		return files.PathError("listen on", r.spec.Path, unwrapErrno(err))
	}
	r.listener = l
	mode := r.spec.Mode
	if mode == 0 {
		mode = 0o600
	}
	sock, err := unix.Openat(int(dir.Fd()), base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return files.PathError("chmod", r.spec.Path, err)
	}
	defer unix.Close(sock)
	if err := unix.Chmod("/proc/self/fd/"+strconv.Itoa(sock), mode&0o777); err != nil {
		return files.PathError("chmod", r.spec.Path, err)
	}
	return nil
}

func (r *relay) listenVsock(listen func(uint32) (net.Listener, error)) error {
	l, err := listen(r.spec.Port)
	if err != nil {
		var coded *errdefs.Error
		if errors.As(err, &coded) {
			return err
		}
		if errors.Is(err, unix.EADDRINUSE) {
			return errdefs.Existsf("vsock port %d is in use", r.spec.Port)
		}
		return errdefs.Internalf("listen on vsock port %d: %w", r.spec.Port, err)
	}
	r.listener = l
	return nil
}

// unwrapErrno digs the errno out of a net error, for PathError.
func unwrapErrno(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// serve accepts until the listener closes.
func (m *Manager) serve(r *relay) {
	defer r.wg.Done()
	for {
		c, err := r.listener.Accept()
		if err != nil {
			if !r.isClosed() {
				m.log.Warn("relay accept failed; relay stopped", "id", r.spec.ID, "err", err)
			}
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			m.carry(r, c)
		}()
	}
}

// carry dials the other side for c and copies both ways.
func (m *Manager) carry(r *relay, c net.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	other, err := r.dialOther(ctx, m.dialHost)
	cancel()
	if err != nil {
		m.log.Warn("relay dial failed", "id", r.spec.ID, "err", err)
		c.Close()
		return
	}
	if !r.track(c, other) {
		return
	}
	done := make(chan struct{}, 2)
	copyHalf := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Pass the end on, keeping the other direction open.
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go copyHalf(other, c)
	go copyHalf(c, other)
	<-done
	<-done
	c.Close()
	other.Close()
	r.untrack(c, other)
}

func (r *relay) dialOther(ctx context.Context, dialHost func(context.Context, uint32) (net.Conn, error)) (net.Conn, error) {
	if r.spec.Direction == GuestListen {
		return dialHost(ctx, r.spec.Port)
	}
	// Resolved again for every connection (the socket may be made after the
	// relay starts), inside the root, then reached through its descriptor:
	// connect(2) by name would follow a symlink anywhere.
	sock, err := r.root.OpenPath(r.spec.Path)
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	var d net.Dialer
	return d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(int(sock.Fd())))
}

// track records a relayed pair; false (and both closed) once stopped.
func (r *relay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	return true
}

func (r *relay) untrack(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		delete(r.conns, c)
	}
}

func (r *relay) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// release closes the listener (removing a socket it made), every relayed
// connection, and, once they are all done, the descriptors held.
func (r *relay) release() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	if r.listener != nil {
		r.listener.Close()
	}
	r.wg.Wait()
	if r.dir != nil {
		r.dir.fd.Close()
	}
	r.root.Close()
}

// Stop stops the relay id; it returns once its connections have ended.
func (m *Manager) Stop(id string) error {
	m.mu.Lock()
	r, ok := m.relays[id]
	delete(m.relays, id)
	m.mu.Unlock()
	if !ok {
		return errdefs.NotFoundf("no relay %q", id)
	}
	r.release()
	m.log.Info("relay stopped", "id", id)
	return nil
}
