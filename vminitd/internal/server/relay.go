package server

import (
	"context"
	"net"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/relay"
)

func (s *Server) RelayUnix(_ context.Context, req *agentv1.RelayUnixRequest) (*agentv1.RelayUnixResponse, error) {
	dir := map[agentv1.RelayDirection]relay.Direction{
		agentv1.RelayDirection_RELAY_DIRECTION_GUEST_LISTEN: relay.GuestListen,
		agentv1.RelayDirection_RELAY_DIRECTION_GUEST_DIAL:   relay.GuestDial,
	}[req.GetDirection()]
	err := s.relays.Start(relay.Spec{
		ID:        req.GetId(),
		Rootfs:    req.GetRootfs(),
		Path:      req.GetPath(),
		Port:      req.GetPort(),
		Direction: dir,
		Mode:      req.GetMode(),
	})
	if err != nil {
		return nil, err
	}
	return &agentv1.RelayUnixResponse{}, nil
}

func (s *Server) StopRelay(_ context.Context, req *agentv1.StopRelayRequest) (*agentv1.StopRelayResponse, error) {
	if err := s.relays.Stop(req.GetId()); err != nil {
		return nil, err
	}
	return &agentv1.StopRelayResponse{}, nil
}

// dialHost and listen are Dial and Listen, unsupported when not given.
func (o Options) dialHost(ctx context.Context, port uint32) (net.Conn, error) {
	if o.Dial == nil {
		return nil, errdefs.Unsupportedf("dialing the host is not available")
	}
	return o.Dial(ctx, port)
}

func (o Options) listen(port uint32) (net.Listener, error) {
	if o.Listen == nil {
		return nil, errdefs.Unsupportedf("listening on vsock is not available")
	}
	return o.Listen(port)
}
