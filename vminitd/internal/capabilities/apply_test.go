package capabilities

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Apply changes the capabilities of the thread it runs on, irreversibly, so
// it is tested in a child: the test binary run again with childEnv naming a
// scenario. The child locks a thread, does what the agent will do before
// exec (switch user, Apply), prints that thread's status, then execs
// itself in "print" mode to print the sets the new program really got.
const childEnv = "VMINITD_CAPS_TEST_CHILD"

// testUID is the non-root user the child switches to.
const testUID = 1000

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := child(mode); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// reduced is what the scenarios apply: Docker's default less two.
var reduced = without(NetRaw, Mknod)

func child(mode string) error {
	if mode == "print" {
		return printStatus("exec", "/proc/self/status")
	}
	runtime.LockOSThread() // never unlocked: the thread execs or dies
	var s Sets
	switch mode {
	case "root":
		s = ForUser(reduced, 0)
	case "user":
		s = ForUser(reduced, testUID)
	case "ambient":
		nbs := []Cap{NetBindService}
		s = Sets{Bounding: reduced, Effective: nbs, Permitted: nbs, Inheritable: nbs, Ambient: nbs}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	if mode != "root" {
		if err := switchUser(testUID); err != nil {
			return err
		}
	}
	if err := Apply(s); err != nil {
		return err
	}
	if err := printStatus("thread", "/proc/thread-self/status"); err != nil {
		return err
	}
	// Replace the mode: getenv takes the first of duplicate entries.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, childEnv+"=") })
	env = append(env, childEnv+"=print")
	// /proc/self/exe: the test binary's directory is root's alone, but
	// the link reaches the file without searching it.
	return unix.Exec("/proc/self/exe", []string{os.Args[0]}, env)
}

// switchUser is step 1 of the sequence Apply documents: keep the permitted
// set, then change groups and ids of this thread only (raw syscalls; the
// libc-style wrappers change every thread).
func switchUser(id uintptr) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keepcaps: %w", err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, id, id, id); e != 0 {
		return fmt.Errorf("setresgid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, id, id, id); e != 0 {
		return fmt.Errorf("setresuid: %w", e)
	}
	return nil
}

// printStatus prints the capability and uid lines of a status file as
// "<prefix> <key> <value>".
func printStatus(prefix, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, _ := strings.Cut(s.Text(), ":")
		if strings.HasPrefix(k, "Cap") || k == "Uid" {
			fmt.Println(prefix, k, strings.Fields(v)[0])
		}
	}
	return s.Err()
}

// runChild runs the child in mode and parses its output.
func runChild(t *testing.T, mode string) map[string]string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	// The child needs CAP_SETPCAP, CAP_SETUID and CAP_SETGID, and can only
	// keep capabilities it has.
	self := map[string]string{}
	f, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(f), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			self[k] = strings.TrimSpace(v)
		}
	}
	have, _ := strconv.ParseUint(self["CapEff"], 16, 64)
	need := setOf(append([]Cap{Setpcap, Setuid, Setgid}, Default...))
	if set(have)&need != need {
		t.Skipf("needs %v, has %s", need.list(), self["CapEff"])
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", mode, err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("child %s: unexpected output %q", mode, out)
		}
		got[f[0]+" "+f[1]] = f[2]
	}
	return got
}

func hex(caps []Cap) string { return fmt.Sprintf("%016x", uint64(setOf(caps))) }

func check(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
}

func TestApplyRoot(t *testing.T) {
	got := runChild(t, "root")
	r := hex(reduced)
	check(t, got, map[string]string{
		"thread CapBnd": r, "thread CapEff": r, "thread CapPrm": r, "thread CapInh": hex(nil), "thread CapAmb": hex(nil),
		// As root, execve grants the bounding set.
		"exec Uid": "0", "exec CapBnd": r, "exec CapEff": r, "exec CapPrm": r, "exec CapInh": hex(nil), "exec CapAmb": hex(nil),
	})
}

func TestApplyUser(t *testing.T) {
	got := runChild(t, "user")
	check(t, got, map[string]string{
		"thread Uid": strconv.Itoa(testUID), "thread CapBnd": hex(reduced), "thread CapEff": hex(nil), "thread CapPrm": hex(nil),
		// Docker's non-root process: nothing but the bounding set.
		"exec Uid": strconv.Itoa(testUID), "exec CapBnd": hex(reduced), "exec CapEff": hex(nil), "exec CapPrm": hex(nil),
		"exec CapInh": hex(nil), "exec CapAmb": hex(nil),
	})
}

func TestApplyAmbient(t *testing.T) {
	got := runChild(t, "ambient")
	nbs := hex([]Cap{NetBindService})
	check(t, got, map[string]string{
		"thread CapAmb": nbs,
		// Ambient capabilities survive execve of a plain file by a non-root user.
		"exec Uid": strconv.Itoa(testUID), "exec CapBnd": hex(reduced), "exec CapEff": nbs, "exec CapPrm": nbs,
		"exec CapInh": nbs, "exec CapAmb": nbs,
	})
}

func TestKernelLastCap(t *testing.T) {
	last, err := kernelLastCap()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Skip(err)
	}
	if want := strings.TrimSpace(string(b)); strconv.Itoa(int(last)) != want {
		t.Fatalf("kernelLastCap = %d, /proc says %s", last, want)
	}
}
