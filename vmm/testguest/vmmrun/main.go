// Command vmmrun boots a kernel with package vmm and nothing else: no CLI framework, no
// image or container packages. Benchmarks run it beside `hull vm run` to separate the
// VMM's own start-up time and memory from the hull binary's.
//
// Usage: vmmrun KERNEL [MEMORY_MIB]. The exit status is the machine's (vmm.Exit.Code).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/hullvm/hull/vmm"
)

func main() {
	code, err := run(context.Background(), os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmmrun:", err)
		os.Exit(125)
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, out io.Writer) (int, error) {
	if len(args) < 1 || len(args) > 2 {
		return 0, fmt.Errorf("usage: vmmrun KERNEL [MEMORY_MIB]")
	}
	cfg := vmm.Config{Kernel: args[0], Console: out}
	if len(args) == 2 {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return 0, fmt.Errorf("memory %q: want a number of MiB", args[1])
		}
		cfg.MemoryMiB = n
	}
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	m, err := vmm.New(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	e, err := m.Run(ctx)
	if err != nil {
		return 0, err
	}
	return e.Code, nil
}
