// Package bench measures VM against container overhead side by side with peers (runc,
// Docker, QEMU microvm, gokvm) in one interleaved run, and reports medians and ratios as
// a table, JSON and a chart. It must not be imported by the engine packages.
package bench
