// Package config reads vminitd's settings from the kernel command line, where
// the host puts them as `vminitd.<key>=<value>` parameters.
package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Prefix marks the kernel parameters that belong to vminitd.
const Prefix = "vminitd."

// Config is vminitd's configuration.
type Config struct {
	// LogPort is the host vsock port logs are written to; 0 means the console.
	LogPort uint32
	// Debug enables debug-level logs.
	Debug bool
	// PowerOff makes vminitd boot, start listening, then power the VM off at
	// once: the boot-floor benchmark and the "does KVM work" probe.
	PowerOff bool
	// Hostname, when set, becomes the guest's hostname.
	Hostname string
	// BootstrapPort is the host vsock port to fetch the container's first
	// process from (BootstrapRequest in the proto); 0 means none.
	BootstrapPort uint32
}

// Default is the configuration when the command line says nothing.
func Default() Config { return Config{} }

// Load reads /proc/cmdline. Problems with individual parameters come back as
// warnings; the affected setting keeps its default.
func Load() (Config, []string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return Default(), nil, err
	}
	cfg, warnings := Parse(string(b))
	return cfg, warnings, nil
}

// Parse reads the vminitd parameters out of a kernel command line.
func Parse(cmdline string) (Config, []string) {
	cfg := Default()
	var warnings []string
	for _, param := range SplitCmdline(cmdline) {
		if param == "--" {
			break // the rest is init's argv, not kernel parameters
		}
		if !strings.HasPrefix(param, Prefix) {
			continue
		}
		key, value, hasValue := strings.Cut(strings.TrimPrefix(param, Prefix), "=")
		if err := cfg.set(key, value, hasValue); err != nil {
			warnings = append(warnings, err.Error())
		}
	}
	return cfg, warnings
}

func (c *Config) set(key, value string, hasValue bool) error {
	switch key {
	case "log":
		if value == "" || value == "console" {
			c.LogPort = 0
			return nil
		}
		port, err := strconv.ParseUint(value, 10, 32)
		if err != nil || port == 0 {
			return fmt.Errorf("%slog=%q: want \"console\" or a vsock port", Prefix, value)
		}
		c.LogPort = uint32(port)
	case "bootstrap":
		port, err := strconv.ParseUint(value, 10, 32)
		if err != nil || port == 0 {
			return fmt.Errorf("%sbootstrap=%q: want a vsock port", Prefix, value)
		}
		c.BootstrapPort = uint32(port)
	case "debug":
		b, err := parseBool(value, hasValue)
		if err != nil {
			return fmt.Errorf("%sdebug: %v", Prefix, err)
		}
		c.Debug = b
	case "poweroff":
		b, err := parseBool(value, hasValue)
		if err != nil {
			return fmt.Errorf("%spoweroff: %v", Prefix, err)
		}
		c.PowerOff = b
	case "hostname":
		if len(value) > 64 {
			return fmt.Errorf("%shostname: longer than 64 bytes", Prefix)
		}
		c.Hostname = value
	default:
		return fmt.Errorf("unknown parameter %s%s", Prefix, key)
	}
	return nil
}

// parseBool accepts a bare key (true) and the usual spellings of booleans.
func parseBool(value string, hasValue bool) (bool, error) {
	if !hasValue {
		return true, nil
	}
	switch strings.ToLower(value) {
	case "1", "y", "yes", "true", "on":
		return true, nil
	case "0", "n", "no", "false", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", value)
}

// SplitCmdline splits a kernel command line into parameters the way the
// kernel does: on whitespace, except inside double quotes, which are removed.
func SplitCmdline(cmdline string) []string {
	var params []string
	var cur strings.Builder
	inQuote, inParam := false, false
	for _, r := range cmdline {
		switch {
		case r == '"':
			inQuote = !inQuote
			inParam = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inParam {
				params = append(params, cur.String())
				cur.Reset()
				inParam = false
			}
		default:
			cur.WriteRune(r)
			inParam = true
		}
	}
	if inParam {
		params = append(params, cur.String())
	}
	return params
}
