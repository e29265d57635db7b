package errdefs

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Trailing metadata keys; the same on the host (lib/errors).
const (
	CodeMetadataKey = "container-error-code"
	HintMetadataKey = "container-error-hint"
)

var toGRPC = map[Code]codes.Code{
	InvalidArgument:   codes.InvalidArgument,
	NotFound:          codes.NotFound,
	Exists:            codes.AlreadyExists,
	InvalidState:      codes.FailedPrecondition,
	Timeout:           codes.DeadlineExceeded,
	Unsupported:       codes.Unimplemented,
	Unavailable:       codes.Unavailable,
	ResourceExhausted: codes.ResourceExhausted,
	Cancelled:         codes.Canceled,
	Internal:          codes.Internal,
}

// GRPCCode is the gRPC status code a shared code travels as.
func GRPCCode(c Code) codes.Code {
	if g, ok := toGRPC[c]; ok {
		return g
	}
	return codes.Internal
}

// FromGRPCCode is the inverse of GRPCCode; codes without a counterpart are
// internal.
func FromGRPCCode(g codes.Code) Code {
	for c, k := range toGRPC {
		if k == g {
			return c
		}
	}
	return Internal
}

// ToGRPC turns err into the status and trailing metadata a server sends. An
// error that already is a gRPC status (from the gRPC machinery itself) keeps
// its code and gets the matching code name.
func ToGRPC(err error) (*status.Status, metadata.MD) {
	if err == nil {
		return nil, nil
	}
	var code Code
	var st *status.Status
	if s, ok := status.FromError(err); ok && !isOurs(err) {
		st = s
		code = FromGRPCCode(s.Code())
	} else {
		code = CodeOf(err)
		st = status.New(GRPCCode(code), err.Error())
	}
	md := metadata.Pairs(CodeMetadataKey, string(code))
	if hint := HintOf(err); hint != "" {
		md.Set(HintMetadataKey, hint)
	}
	return st, md
}

func isOurs(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
