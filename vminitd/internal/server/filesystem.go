package server

import (
	"context"

	agentv1 "github.com/container-vm/container/vminitd/api/v1"
	"github.com/container-vm/container/vminitd/internal/files"
)

// The filesystem RPCs: paths in the guest, or confined to a rootfs (see
// internal/files).

// withRoot runs f on the root that req's rootfs names ("" is the guest's).
func withRoot(rootfs string, f func(*files.Root) error) error {
	r, err := files.OpenRoot(rootfs)
	if err != nil {
		return err
	}
	defer r.Close()
	return f(r)
}

func (s *Server) Unmount(_ context.Context, req *agentv1.UnmountRequest) (*agentv1.UnmountResponse, error) {
	err := withRoot(req.GetRootfs(), func(r *files.Root) error { return r.Unmount(req.GetPath(), req.GetLazy()) })
	if err != nil {
		return nil, err
	}
	s.opts.Log.Info("unmounted", "rootfs", req.GetRootfs(), "path", req.GetPath())
	return &agentv1.UnmountResponse{}, nil
}

func (s *Server) Mkdir(_ context.Context, req *agentv1.MkdirRequest) (*agentv1.MkdirResponse, error) {
	err := withRoot(req.GetRootfs(), func(r *files.Root) error { return r.Mkdir(req.GetPath(), req.GetMode(), req.GetParents()) })
	if err != nil {
		return nil, err
	}
	return &agentv1.MkdirResponse{}, nil
}

func (s *Server) WriteFile(_ context.Context, req *agentv1.WriteFileRequest) (*agentv1.WriteFileResponse, error) {
	o := files.WriteOptions{Mode: req.GetMode(), Append: req.GetAppend(), Exclusive: req.GetExclusive()}
	err := withRoot(req.GetRootfs(), func(r *files.Root) error { return r.WriteFile(req.GetPath(), req.GetData(), o) })
	if err != nil {
		return nil, err
	}
	return &agentv1.WriteFileResponse{}, nil
}

// fileTypes maps files' types onto the wire's.
var fileTypes = map[files.FileType]agentv1.FileType{
	files.TypeRegular:     agentv1.FileType_FILE_TYPE_REGULAR,
	files.TypeDirectory:   agentv1.FileType_FILE_TYPE_DIRECTORY,
	files.TypeSymlink:     agentv1.FileType_FILE_TYPE_SYMLINK,
	files.TypeFIFO:        agentv1.FileType_FILE_TYPE_FIFO,
	files.TypeSocket:      agentv1.FileType_FILE_TYPE_SOCKET,
	files.TypeCharDevice:  agentv1.FileType_FILE_TYPE_CHAR_DEVICE,
	files.TypeBlockDevice: agentv1.FileType_FILE_TYPE_BLOCK_DEVICE,
}

func (s *Server) Stat(_ context.Context, req *agentv1.StatRequest) (*agentv1.StatResponse, error) {
	var in files.Info
	err := withRoot(req.GetRootfs(), func(r *files.Root) error {
		var err error
		in, err = r.Stat(req.GetPath())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &agentv1.StatResponse{
		Type:       fileTypes[in.Type],
		Mode:       in.Mode,
		Size:       in.Size,
		Uid:        in.UID,
		Gid:        in.GID,
		MtimeNs:    in.MtimeNs,
		LinkTarget: in.LinkTarget,
	}, nil
}
