package vmm

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

// disks returns n disks with distinct paths and no ids.
func disks(n int) []Disk {
	ds := make([]Disk, n)
	for i := range ds {
		ds[i].Path = fmt.Sprint("disk", i)
	}
	return ds
}

func TestValidate(t *testing.T) {
	ok := Config{Kernel: "k"}
	tests := []struct {
		name string
		edit func(c *Config)
		ok   bool
	}{
		{"minimal", func(c *Config) {}, true},
		{"no kernel", func(c *Config) { c.Kernel = "" }, false},
		{"max CPUs", func(c *Config) { c.CPUs = MaxCPUs }, true},
		{"too many CPUs", func(c *Config) { c.CPUs = MaxCPUs + 1 }, false},
		{"negative CPUs", func(c *Config) { c.CPUs = -1 }, false},
		{"too little memory", func(c *Config) { c.MemoryMiB = MinMemoryMiB - 1 }, false},
		{"too much memory", func(c *Config) { c.MemoryMiB = MaxMemoryMiB + 1 }, false},
		{"disks", func(c *Config) { c.Disks = []Disk{{Path: "a", ID: "x"}, {Path: "b"}, {Path: "c"}} }, true},
		{"disk without path", func(c *Config) { c.Disks = []Disk{{ID: "x"}} }, false},
		{"duplicate id", func(c *Config) { c.Disks = []Disk{{Path: "a", ID: "x"}, {Path: "b", ID: "x"}} }, false},
		{"long id", func(c *Config) { c.Disks = []Disk{{Path: "a", ID: strings.Repeat("x", 21)}} }, false},
		{"all windows", func(c *Config) { c.Disks = disks(MaxVirtio - 1); c.RNG = true }, true},
		{"too many devices", func(c *Config) { c.Disks = disks(MaxVirtio); c.RNG = true }, false},
		{"vsock", func(c *Config) { c.Vsock = &Vsock{CID: 3, UDS: "/run/v.sock"} }, true},
		{"vsock reserved CID", func(c *Config) { c.Vsock = &Vsock{CID: 2, UDS: "/run/v.sock"} }, false},
		{"net", func(c *Config) { c.Nets = []Net{{Tap: "tap0"}, {Tap: "tap1", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}} }, true},
		{"net without tap name", func(c *Config) { c.Nets = []Net{{}} }, false},
		{"net tap name too long", func(c *Config) { c.Nets = []Net{{Tap: "a-very-long-tap-name"}} }, false},
		{"net tap twice", func(c *Config) { c.Nets = []Net{{Tap: "t"}, {Tap: "t"}} }, false},
		{"net multicast MAC", func(c *Config) { c.Nets = []Net{{Tap: "t", MAC: net.HardwareAddr{1, 0, 0, 0, 0, 1}}} }, false},
		{"vsock without socket", func(c *Config) { c.Vsock = &Vsock{CID: 3} }, false},
		{"too many with vsock", func(c *Config) { c.Disks = disks(MaxVirtio - 1); c.RNG = true; c.Vsock = &Vsock{CID: 3, UDS: "v"} }, false},
		{"NUL in cmdline", func(c *Config) { c.Cmdline = "a\x00b" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("%v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}
