package process

import "syscall"

// ExitCode is the shell-style exit status of a terminated process: its exit
// code, or 128+N when signal N killed it.
func ExitCode(ws syscall.WaitStatus) int32 {
	switch {
	case ws.Exited():
		return int32(ws.ExitStatus())
	case ws.Signaled():
		return 128 + int32(ws.Signal())
	}
	// Stopped or continued: not a termination; callers only pass terminations.
	return -1
}
