// Command hull-init is the microVM guest's /init: see package agent and docs/guest.md.
// Build it static (CGO_ENABLED=0); scripts/initramfs does.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/hullvm/hull/guest/agent"
)

func main() {
	if agent.InExecStage() {
		agent.ExecStage()
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "hull-init: must run as PID 1, the /init of a hull microVM (see docs/guest.md)")
		os.Exit(2)
	}
	agent.Init(slog.New(slog.NewTextHandler(os.Stderr, nil)))
}
