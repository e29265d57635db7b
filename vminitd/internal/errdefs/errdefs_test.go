package errdefs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestGRPCCodeMapping(t *testing.T) {
	want := map[Code]codes.Code{
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
	if len(want) != len(Codes) {
		t.Fatalf("Codes has %d entries, mapping test has %d", len(Codes), len(want))
	}
	seen := map[codes.Code]bool{}
	for _, c := range Codes {
		g := GRPCCode(c)
		if g != want[c] {
			t.Errorf("GRPCCode(%s) = %v, want %v", c, g, want[c])
		}
		if seen[g] {
			t.Errorf("gRPC code %v used twice", g)
		}
		seen[g] = true
		if back := FromGRPCCode(g); back != c {
			t.Errorf("FromGRPCCode(%v) = %s, want %s", g, back, c)
		}
	}
	if FromGRPCCode(codes.Unknown) != Internal {
		t.Errorf("unmapped gRPC code should be internal")
	}
	if GRPCCode("bogus") != codes.Internal {
		t.Errorf("unknown code should map to Internal")
	}
}

func TestToGRPC(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     codes.Code
		codeName string
		msg      string
		hint     string
	}{
		{"notFound", NotFoundf("process %q not found", "p1"), codes.NotFound, "notFound", `process "p1" not found`, ""},
		{"hint", WithHint(InvalidStatef("process is running"), "kill it first"), codes.FailedPrecondition, "invalidState", "process is running", "kill it first"},
		{"wrapped", fmt.Errorf("context: %w", Existsf("id taken")), codes.AlreadyExists, "exists", "context: id taken", ""},
		{"plain", fmt.Errorf("boom"), codes.Internal, "internal", "boom", ""},
		{"fs", fmt.Errorf("open: %w", fs.ErrNotExist), codes.NotFound, "notFound", "open: file does not exist", ""},
		{"ctx", context.DeadlineExceeded, codes.DeadlineExceeded, "timeout", "context deadline exceeded", ""},
		{"status", status.Error(codes.Unavailable, "down"), codes.Unavailable, "unavailable", "down", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, md := ToGRPC(tt.err)
			if st.Code() != tt.code {
				t.Errorf("code = %v, want %v", st.Code(), tt.code)
			}
			if st.Message() != tt.msg {
				t.Errorf("message = %q, want %q", st.Message(), tt.msg)
			}
			if got := md.Get(CodeMetadataKey); len(got) != 1 || got[0] != tt.codeName {
				t.Errorf("%s = %v, want %s", CodeMetadataKey, got, tt.codeName)
			}
			got := md.Get(HintMetadataKey)
			if tt.hint == "" && len(got) != 0 {
				t.Errorf("unexpected hint %v", got)
			}
			if tt.hint != "" && (len(got) != 1 || got[0] != tt.hint) {
				t.Errorf("hint = %v, want %q", got, tt.hint)
			}
		})
	}
}

func TestNewKeepsCause(t *testing.T) {
	cause := fs.ErrPermission
	err := New(Internal, "mount: %w", cause)
	if CodeOf(err) != Internal || err.Error() != "mount: permission denied" {
		t.Fatalf("got %v (%s)", err, CodeOf(err))
	}
	if !Is(err, Internal) {
		t.Fatal("Is failed")
	}
	var e *Error
	if !errors.As(err, &e) || e.Cause != cause {
		t.Fatalf("cause not kept: %#v", e)
	}
	if CodeOf(nil) != "" {
		t.Fatal("nil has no code")
	}
	for _, c := range Codes {
		if !c.Valid() {
			t.Errorf("%s not valid", c)
		}
	}
	if Code("nope").Valid() {
		t.Error("nope is valid")
	}
}
