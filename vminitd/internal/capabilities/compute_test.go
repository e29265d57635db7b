package capabilities

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// without is Default minus some capabilities.
func without(caps ...Cap) []Cap {
	return slices.DeleteFunc(slices.Clone(Default), func(c Cap) bool { return slices.Contains(caps, c) })
}

// plus is Default plus some capabilities, in number order.
func plus(caps ...Cap) []Cap {
	return setOf(append(slices.Clone(Default), caps...)).list()
}

func TestDefault(t *testing.T) {
	want := []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
		"CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
		"CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
	}
	var got []string
	for _, c := range Default {
		got = append(got, c.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Default = %v", got)
	}
	if !slices.IsSorted(Default) {
		t.Fatal("Default is not in number order")
	}
}

func TestCompute(t *testing.T) {
	allBut := func(caps ...Cap) []Cap {
		return slices.DeleteFunc(All(), func(c Cap) bool { return slices.Contains(caps, c) })
	}
	tests := []struct {
		name      string
		add, drop []string
		want      []Cap
	}{
		{"none", nil, nil, Default},
		{"add", []string{"sys_admin"}, nil, plus(SysAdmin)},
		{"add present", []string{"CHOWN"}, nil, Default},
		{"add twice", []string{"NET_ADMIN", "cap_net_admin"}, nil, plus(NetAdmin)},
		{"drop", nil, []string{"net_raw", "CAP_MKNOD"}, without(NetRaw, Mknod)},
		{"drop absent", nil, []string{"SYS_ADMIN"}, Default},
		{"drop and add other", []string{"SYS_PTRACE"}, []string{"NET_RAW"}, setOf(append(without(NetRaw), SysPtrace)).list()},
		// moby adds after dropping: named in both, it stays.
		{"add and drop same", []string{"CHOWN", "SYS_ADMIN"}, []string{"chown", "sys_admin"}, plus(SysAdmin)},
		{"drop ALL", nil, []string{"ALL"}, nil},
		{"drop all lowercase", nil, []string{"all"}, nil},
		{"drop ALL add", []string{"NET_BIND_SERVICE", "chown"}, []string{"ALL"}, []Cap{Chown, NetBindService}},
		{"drop ALL and more", []string{"KILL"}, []string{"ALL", "KILL"}, []Cap{Kill}},
		{"add ALL", []string{"ALL"}, nil, All()},
		{"add ALL drop", []string{"ALL"}, []string{"SYS_ADMIN", "cap_net_admin"}, allBut(SysAdmin, NetAdmin)},
		{"add ALL drop ALL", []string{"ALL"}, []string{"ALL"}, All()},
		{"add ALL and one", []string{"all", "SYS_ADMIN"}, []string{"SYS_ADMIN"}, allBut(SysAdmin)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compute(tt.add, tt.drop)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Compute(%q, %q) =\n%v, want\n%v", tt.add, tt.drop, got, tt.want)
			}
		})
	}
}

func TestComputeErrors(t *testing.T) {
	tests := []struct {
		add, drop []string
		msg       string
	}{
		{[]string{"CHOWN", "FOO"}, nil, `cap-add: unknown capability "FOO"`},
		{nil, []string{"cap_bar"}, `cap-drop: unknown capability "cap_bar"`},
		{[]string{"ALL"}, []string{"nope"}, `cap-drop: unknown capability "nope"`},
		{nil, []string{"ALL", ""}, `cap-drop: unknown capability ""`},
	}
	for _, tt := range tests {
		_, err := Compute(tt.add, tt.drop)
		if !errdefs.Is(err, errdefs.InvalidArgument) {
			t.Errorf("Compute(%q, %q): %v, want invalidArgument", tt.add, tt.drop, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Compute(%q, %q): %q, want %q", tt.add, tt.drop, err, tt.msg)
		}
	}
}

func TestForUser(t *testing.T) {
	caps := []Cap{Chown, Kill}
	if got := ForUser(caps, 0); !reflect.DeepEqual(got, Sets{Bounding: caps, Effective: caps, Permitted: caps}) {
		t.Errorf("root: %+v", got)
	}
	if got := ForUser(caps, 1000); !reflect.DeepEqual(got, Sets{Bounding: caps}) {
		t.Errorf("user: %+v", got)
	}
}

func TestSetsValidate(t *testing.T) {
	ok := []Sets{
		{},
		ForUser(Default, 0),
		ForUser(Default, 1000),
		{Permitted: []Cap{Kill}, Inheritable: []Cap{Kill}, Ambient: []Cap{Kill}},
	}
	for _, s := range ok {
		if err := s.validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	bad := map[string]Sets{
		"effective not permitted":  {Effective: []Cap{Kill}, Permitted: []Cap{Chown}},
		"ambient not inheritable":  {Permitted: []Cap{Kill}, Ambient: []Cap{Kill}},
		"ambient not permitted":    {Inheritable: []Cap{Kill}, Ambient: []Cap{Kill}},
		"unknown number":           {Bounding: []Cap{41}},
		"negative number":          {Bounding: []Cap{-1}},
		"out of any kernel's sets": {Permitted: []Cap{64}},
	}
	for name, s := range bad {
		if err := s.validate(); !errdefs.Is(err, errdefs.InvalidArgument) {
			t.Errorf("%s: %v, want invalidArgument", name, err)
		}
	}
}
