package process

import (
	"os"
	"syscall"
	"testing"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		ws   syscall.WaitStatus
		want int32
	}{
		{"exit 0", 0x0000, 0},
		{"exit 1", 0x0100, 1},
		{"exit 255", 0xff00, 255},
		{"SIGKILL", syscall.WaitStatus(syscall.SIGKILL), 137},
		{"SIGTERM", syscall.WaitStatus(syscall.SIGTERM), 143},
		{"SIGSEGV with core", syscall.WaitStatus(syscall.SIGSEGV) | 0x80, 139},
		{"stopped", 0x137f, -1},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.ws); got != tt.want {
			t.Errorf("%s: ExitCode(%#x) = %d, want %d", tt.name, uint32(tt.ws), got, tt.want)
		}
	}
}

func TestExitCodeRealProcess(t *testing.T) {
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		t.Skip("no /bin/sh")
	}
	run := func(script string) int32 {
		pid, err := syscall.ForkExec(sh, []string{"sh", "-c", script}, &syscall.ProcAttr{})
		if err != nil {
			t.Fatal(err)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			t.Fatal(err)
		}
		return ExitCode(ws)
	}
	if got := run("exit 3"); got != 3 {
		t.Errorf("exit 3: got %d", got)
	}
	if got := run("kill -TERM $$"); got != 143 {
		t.Errorf("SIGTERM: got %d", got)
	}
}
