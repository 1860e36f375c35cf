// Package bundle builds the OCI runtime-spec bundle (config.json) that both isolation
// modes run, from an image config and the user's run options: process, mounts, default
// capabilities, seccomp profile, masked and read-only paths.
//
// It must not import vmm, guest or container.
package bundle
