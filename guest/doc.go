// Package guest is the host side of the microVM guest: the protocol spoken with the
// hull-init agent over vsock, and the client that hands the agent an OCI process, wires
// stdio and returns the exit status.
//
// It must not import the CLI or container packages.
package guest
