package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// unaryInterceptor turns every handler error into a gRPC status with the
// shared code and its trailing metadata, recovers handler panics (the agent
// must keep serving after any bad request), and logs each call.
func unaryInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				log.Error("handler panic", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				resp, err = nil, errdefs.Internalf("internal error in %s: %v", info.FullMethod, r)
			}
			if err == nil {
				log.Debug("rpc", "method", info.FullMethod, "duration_us", time.Since(start).Microseconds())
				return
			}
			st, md := errdefs.ToGRPC(err)
			_ = grpc.SetTrailer(ctx, md)
			log.Debug("rpc failed", "method", info.FullMethod, "duration_us", time.Since(start).Microseconds(),
				"code", md.Get(errdefs.CodeMetadataKey), "err", st.Message())
			resp, err = nil, st.Err()
		}()
		return handler(ctx, req)
	}
}
