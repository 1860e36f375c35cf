// Package vsock is the virtio socket device (virtio 1.2 §5.10), stream sockets only,
// with the host side on Unix sockets in Firecracker's convention: the VM has one Unix
// socket path; a host program connects to it and sends "CONNECT <port>\n" to reach
// guest port <port>, and gets "OK <hostport>\n" before the stream; a guest connecting to
// host (CID 2) port P reaches the Unix socket "<path>_<P>".
//
// It must not import kvm or vmm.
package vsock
