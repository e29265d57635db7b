package server

import (
	"context"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/files"
	"github.com/container-vm/container/vminitd/internal/netconf"
)

func (s *Server) LinkUp(_ context.Context, req *agentv1.LinkUpRequest) (*agentv1.LinkUpResponse, error) {
	if err := netconf.LinkUp(req.GetLink()); err != nil {
		return nil, err
	}
	s.opts.Log.Info("link up", "link", req.GetLink())
	return &agentv1.LinkUpResponse{}, nil
}

func (s *Server) AddAddress(_ context.Context, req *agentv1.AddAddressRequest) (*agentv1.AddAddressResponse, error) {
	if err := netconf.AddAddress(req.GetLink(), req.GetCidr()); err != nil {
		return nil, err
	}
	s.opts.Log.Info("address added", "link", req.GetLink(), "cidr", req.GetCidr())
	return &agentv1.AddAddressResponse{}, nil
}

func (s *Server) AddRoute(_ context.Context, req *agentv1.AddRouteRequest) (*agentv1.AddRouteResponse, error) {
	r, err := netconf.ParseRoute(req.GetDestination(), req.GetGateway(), req.GetLink())
	if err != nil {
		return nil, err
	}
	if err := netconf.AddRoute(r); err != nil {
		return nil, err
	}
	s.opts.Log.Info("route added", "destination", r.Destination, "gateway", req.GetGateway(), "link", req.GetLink())
	return &agentv1.AddRouteResponse{}, nil
}

func (s *Server) WriteResolvConf(_ context.Context, req *agentv1.WriteResolvConfRequest) (*agentv1.WriteResolvConfResponse, error) {
	b, err := netconf.ResolvConf(req.GetNameservers(), req.GetSearch(), req.GetOptions())
	if err != nil {
		return nil, err
	}
	if err := replaceInRootfs(req.GetRootfs(), "/etc/resolv.conf", b); err != nil {
		return nil, err
	}
	return &agentv1.WriteResolvConfResponse{}, nil
}

func (s *Server) WriteHosts(_ context.Context, req *agentv1.WriteHostsRequest) (*agentv1.WriteHostsResponse, error) {
	entries := make([]netconf.HostsEntry, len(req.GetEntries()))
	for i, e := range req.GetEntries() {
		entries[i] = netconf.HostsEntry{IP: e.GetIp(), Hostnames: e.GetHostnames()}
	}
	b, err := netconf.Hosts(entries)
	if err != nil {
		return nil, err
	}
	if err := replaceInRootfs(req.GetRootfs(), "/etc/hosts", b); err != nil {
		return nil, err
	}
	return &agentv1.WriteHostsResponse{}, nil
}

// replaceInRootfs puts a world-readable file at name in the rootfs.
func replaceInRootfs(rootfs, name string, data []byte) error {
	if rootfs == "" {
		return errdefs.InvalidArgumentf("rootfs is required")
	}
	return withRoot(rootfs, func(r *files.Root) error { return r.Replace(name, data, 0o644) })
}
