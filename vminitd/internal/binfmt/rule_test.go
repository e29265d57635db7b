package binfmt

import (
	"bytes"
	"debug/elf"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// The magic and mask of qemu's scripts/qemu-binfmt-conf.sh, verbatim, as
// written in the shell script (letters as they are, other bytes as \xHH).
var qemuConf = map[string][2]string{
	"x86_64": {
		`\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00`,
		`\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`,
	},
	"aarch64": {
		`\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00`,
		`\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`,
	},
}

// unescape decodes the shell script's \xHH notation.
func unescape(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	for i := 0; i < len(s); i++ {
		if strings.HasPrefix(s[i:], `\x`) {
			v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, byte(v))
			i += 3
			continue
		}
		out = append(out, s[i])
	}
	return out
}

func TestElfMatchIsQemus(t *testing.T) {
	for name, want := range qemuConf {
		a := arches[name]
		magic, mask := elfMatch(a.machine, a.looseIdent)
		if !bytes.Equal(magic, unescape(t, want[0])) {
			t.Errorf("%s magic = %s, want %s", name, escape(magic), want[0])
		}
		if !bytes.Equal(mask, unescape(t, want[1])) {
			t.Errorf("%s mask = %s, want %s", name, escape(mask), want[1])
		}
	}
}

func TestRuleString(t *testing.T) {
	r, needed, err := ForArch("arm64", "amd64", "/usr/bin/qemu-x86_64-static")
	if err != nil || !needed {
		t.Fatal(needed, err)
	}
	want := `:qemu-x86_64:M:0:` +
		`\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:` +
		`\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:` +
		`/usr/bin/qemu-x86_64-static:PF`
	if got := r.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// No separator or newline can come from the bytes: every one is escaped.
	if got := (Rule{Name: "n", Magic: []byte(":\n\\"), Interpreter: "/i"}).String(); got != `:n:M:0:\x3a\x0a\x5c::/i:` {
		t.Fatalf("escaping: %s", got)
	}
}

func TestRosetta(t *testing.T) {
	r, err := Rosetta("/run/rosetta/rosetta")
	if err != nil {
		t.Fatal(err)
	}
	want := `:rosetta:M:0:` +
		`\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:` +
		`\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:` +
		`/run/rosetta/rosetta:CF`
	if got := r.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := Rosetta("rosetta"); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Fatalf("relative interpreter: %v", err)
	}
}

// matches applies a rule the way the kernel's check_file does: the bits
// set in the mask must agree.
func matches(r Rule, file []byte) bool {
	if len(file) < len(r.Magic) {
		return false
	}
	for i := range r.Magic {
		if (file[i]^r.Magic[i])&r.Mask[i] != 0 {
			return false
		}
	}
	return true
}

func TestRuleMatchesHeaders(t *testing.T) {
	x86, _, _ := ForArch("arm64", "amd64", "/q")
	arm, _, _ := ForArch("amd64", "arm64", "/q")
	header := func(class elf.Class, data elf.Data, osabi elf.OSABI, typ elf.Type, machine elf.Machine) []byte {
		h := make([]byte, 64)
		copy(h, elf.ELFMAG)
		h[elf.EI_CLASS], h[elf.EI_DATA], h[elf.EI_VERSION], h[elf.EI_OSABI] = byte(class), byte(data), byte(elf.EV_CURRENT), byte(osabi)
		h[16], h[17] = byte(typ), byte(typ>>8)
		h[18], h[19] = byte(machine), byte(machine>>8)
		return h
	}
	tests := []struct {
		name     string
		file     []byte
		x86, arm bool
	}{
		{"x86_64 executable", header(elf.ELFCLASS64, elf.ELFDATA2LSB, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_X86_64), true, false},
		{"x86_64 PIE", header(elf.ELFCLASS64, elf.ELFDATA2LSB, elf.ELFOSABI_NONE, elf.ET_DYN, elf.EM_X86_64), true, false},
		{"x86_64 GNU/Linux ABI", header(elf.ELFCLASS64, elf.ELFDATA2LSB, elf.ELFOSABI_LINUX, elf.ET_DYN, elf.EM_X86_64), true, false},
		{"x86_64 object file", header(elf.ELFCLASS64, elf.ELFDATA2LSB, elf.ELFOSABI_NONE, elf.ET_REL, elf.EM_X86_64), false, false},
		{"x86_64 core", header(elf.ELFCLASS64, elf.ELFDATA2LSB, elf.ELFOSABI_NONE, elf.ET_CORE, elf.EM_X86_64), false, false},
		{"i386", header(elf.ELFCLASS32, elf.ELFDATA2LSB, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_386), false, false},
		{"aarch64 PIE", header(elf.ELFCLASS64, elf.ELFDATA2LSB, elf.ELFOSABI_NONE, elf.ET_DYN, elf.EM_AARCH64), false, true},
		{"aarch64 big-endian", header(elf.ELFCLASS64, elf.ELFDATA2MSB, elf.ELFOSABI_NONE, elf.ET_DYN, elf.EM_AARCH64), false, false},
		{"arm 32-bit", header(elf.ELFCLASS32, elf.ELFDATA2LSB, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_ARM), false, false},
		{"script", []byte("#!/bin/sh\necho hello world, long enough\n"), false, false},
		{"short", []byte("\x7fELF"), false, false},
	}
	for _, tt := range tests {
		if got := matches(x86, tt.file); got != tt.x86 {
			t.Errorf("%s: x86_64 rule matches = %v", tt.name, got)
		}
		if got := matches(arm, tt.file); got != tt.arm {
			t.Errorf("%s: aarch64 rule matches = %v", tt.name, got)
		}
	}

	// And a real binary: this test's own.
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Skip(err)
	}
	if matches(x86, self) != (runtime.GOARCH == "amd64") || matches(arm, self) != (runtime.GOARCH == "arm64") {
		t.Errorf("the %s test binary: x86_64 %v, aarch64 %v", runtime.GOARCH, matches(x86, self), matches(arm, self))
	}
}

func TestForArch(t *testing.T) {
	for _, same := range [][2]string{{"amd64", "amd64"}, {"amd64", "x86_64"}, {"aarch64", "arm64"}} {
		r, needed, err := ForArch(same[0], same[1], "/q")
		if err != nil || needed || r.Name != "" {
			t.Errorf("ForArch(%s, %s) = %+v, %v, %v; want no rule", same[0], same[1], r, needed, err)
		}
	}
	r, needed, err := ForArch("x86_64", "arm64", "/usr/bin/qemu-aarch64-static")
	if err != nil || !needed || r.Name != "qemu-aarch64" || r.Flags != "PF" || r.Interpreter != "/usr/bin/qemu-aarch64-static" {
		t.Errorf("arm64 on x86_64: %+v, %v, %v", r, needed, err)
	}
	for _, bad := range [][2]string{{"amd64", "riscv64"}, {"s390x", "amd64"}, {"", "amd64"}, {"AMD64", "arm64"}} {
		if _, _, err := ForArch(bad[0], bad[1], "/q"); !errdefs.Is(err, errdefs.Unsupported) {
			t.Errorf("ForArch(%q, %q): %v, want unsupported", bad[0], bad[1], err)
		}
	}
	if _, _, err := ForArch("amd64", "arm64", ""); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Errorf("no interpreter: %v", err)
	}
	if _, _, err := ForArch("amd64", "amd64", ""); err != nil {
		t.Errorf("no rule needs no interpreter: %v", err)
	}
}

func TestValidate(t *testing.T) {
	good := Rule{Name: "ok", Magic: []byte{1, 2}, Mask: []byte{0xff, 0xff}, Interpreter: "/bin/i", Flags: "POCF"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	noMask := good
	noMask.Mask = nil
	if err := noMask.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(r *Rule){
		"no name":          func(r *Rule) { r.Name = "" },
		"dot":              func(r *Rule) { r.Name = "." },
		"dotdot":           func(r *Rule) { r.Name = ".." },
		"register":         func(r *Rule) { r.Name = "register" },
		"status":           func(r *Rule) { r.Name = "status" },
		"slash":            func(r *Rule) { r.Name = "a/b" },
		"colon in name":    func(r *Rule) { r.Name = "a:b" },
		"newline in name":  func(r *Rule) { r.Name = "a\nb" },
		"no magic":         func(r *Rule) { r.Magic, r.Mask = nil, nil },
		"long magic":       func(r *Rule) { r.Magic, r.Mask = make([]byte, 129), nil },
		"mask length":      func(r *Rule) { r.Mask = []byte{0xff} },
		"no interpreter":   func(r *Rule) { r.Interpreter = "" },
		"relative":         func(r *Rule) { r.Interpreter = "bin/i" },
		"colon in interp":  func(r *Rule) { r.Interpreter = "/a:b" },
		"unknown flag":     func(r *Rule) { r.Flags = "X" },
		"lowercase flag":   func(r *Rule) { r.Flags = "f" },
		"flag twice":       func(r *Rule) { r.Flags = "FF" },
		"too long overall": func(r *Rule) { r.Interpreter = "/" + strings.Repeat("i", maxRegister) },
	}
	for name, mutate := range bad {
		r := good
		mutate(&r)
		if err := r.Validate(); !errdefs.Is(err, errdefs.InvalidArgument) {
			t.Errorf("%s: %v, want invalidArgument", name, err)
		}
	}
}
