//go:build tools

package initramfs

// The debug shell's commands are built by gobusybox from this module's graph; these
// imports keep `go mod tidy` from dropping their dependencies (gosh needs
// github.com/knz/bubbline). The file is never compiled.
import (
	_ "github.com/u-root/u-root/cmds/core/cat"
	_ "github.com/u-root/u-root/cmds/core/dmesg"
	_ "github.com/u-root/u-root/cmds/core/gosh"
	_ "github.com/u-root/u-root/cmds/core/ls"
	_ "github.com/u-root/u-root/cmds/core/mount"
	_ "github.com/u-root/u-root/cmds/core/ps"
)
