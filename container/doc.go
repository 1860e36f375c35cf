// Package container is the container lifecycle shared by both isolation modes: state on
// disk, create, start, wait, kill, remove, logs. The modes plug in behind a small
// Runtime interface: an OCI runtime binary (runc, crun) for shared-kernel containers and
// a microVM for VM isolation.
//
// It must not import the CLI.
package container
