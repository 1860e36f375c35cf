// Package bench measures VM against container overhead side by side with peers (runc,
// Docker, QEMU microvm, gokvm) in one interleaved run, and reports medians and ratios as
// a table, JSON and a chart. Samples taken in the nested KVM lab (Where "lab") are
// compared only with the lab's own baseline; lab.go frames and parses the report of a
// run inside the lab. It must not be imported by the engine packages.
package bench
