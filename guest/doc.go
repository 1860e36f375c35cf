// Package guest is the host side of the microVM guest: the framed protocol spoken with
// the hull-init agent over vsock (shared with the agent, guest/agent), the Firecracker-
// style vsock dialer, and the client that hands the agent an OCI process (the VM's
// container, Run, or a further process in it, Exec), wires stdio and signals and returns
// the exit status. docs/guest.md describes the wire format.
//
// Everything the agent sends is hostile input: frames are size-checked before they are
// read. It must not import the CLI, vmm, kvm, images or container packages, and stays
// small because hull-init links it.
package guest
