// Package errdefs holds the agent's error type and the fixed set of error
// codes it shares with the host (lib/errors). At the gRPC boundary a code maps
// one-to-one onto a gRPC status code; the code's name and an optional hint
// travel in trailing metadata so the host can rebuild the exact error.
package errdefs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Code is one of the shared error codes; its value is the name on the wire.
type Code string

const (
	InvalidArgument   Code = "invalidArgument"
	NotFound          Code = "notFound"
	Exists            Code = "exists"
	InvalidState      Code = "invalidState"
	Timeout           Code = "timeout"
	Unsupported       Code = "unsupported"
	Unavailable       Code = "unavailable"
	ResourceExhausted Code = "resourceExhausted"
	Cancelled         Code = "cancelled"
	Internal          Code = "internal"
)

// Codes lists every code, in the host's order.
var Codes = []Code{
	InvalidArgument, NotFound, Exists, InvalidState, Timeout,
	Unsupported, Unavailable, ResourceExhausted, Cancelled, Internal,
}

// Valid reports whether c is one of the shared codes.
func (c Code) Valid() bool {
	for _, k := range Codes {
		if c == k {
			return true
		}
	}
	return false
}

// Error is an error with a shared code, a message for humans and an optional
// hint saying what to do about it.
type Error struct {
	Code    Code
	Message string
	Hint    string
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil && e.Message == "" {
		return e.Cause.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// New makes an error with the given code and a formatted message. A %w verb
// in format records the wrapped error as the cause.
func New(code Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Cause: errors.Unwrap(err)}
}

// Wrap gives err a code, keeping its message; nil stays nil.
func Wrap(code Code, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Message: err.Error(), Cause: err}
}

// WithHint returns err carrying hint; err keeps its code (internal when it had
// none).
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Hint = hint
		return &c
	}
	return &Error{Code: Internal, Message: err.Error(), Hint: hint, Cause: err}
}

// Convenience constructors, one per code.
func InvalidArgumentf(format string, args ...any) error { return New(InvalidArgument, format, args...) }
func NotFoundf(format string, args ...any) error        { return New(NotFound, format, args...) }
func Existsf(format string, args ...any) error          { return New(Exists, format, args...) }
func InvalidStatef(format string, args ...any) error    { return New(InvalidState, format, args...) }
func Unsupportedf(format string, args ...any) error     { return New(Unsupported, format, args...) }
func Unavailablef(format string, args ...any) error     { return New(Unavailable, format, args...) }
func Internalf(format string, args ...any) error        { return New(Internal, format, args...) }

// CodeOf is the shared code of err: the code of the first *Error in its chain,
// else one inferred from well-known standard errors, else internal.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, context.Canceled):
		return Cancelled
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	case errors.Is(err, fs.ErrNotExist):
		return NotFound
	case errors.Is(err, fs.ErrExist):
		return Exists
	case errors.Is(err, fs.ErrInvalid):
		return InvalidArgument
	}
	return Internal
}

// HintOf is the hint of the first *Error in err's chain, or "".
func HintOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Hint
	}
	return ""
}

// Is reports whether err carries the given code.
func Is(err error, code Code) bool { return err != nil && CodeOf(err) == code }

// Line is err as a helper child reports it on a pipe, on one line:
// "<code>\t<message>[\t<hint>]\n". The parent rebuilds the error from it.
func Line(err error) string {
	oneLine := strings.NewReplacer("\n", " ", "\t", " ")
	line := string(CodeOf(err)) + "\t" + oneLine.Replace(err.Error())
	if hint := HintOf(err); hint != "" {
		line += "\t" + oneLine.Replace(hint)
	}
	return line + "\n"
}
