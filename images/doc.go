// Package images is hull's image store: content-addressed blobs, names and tags, image
// configs, and each layer converted once into a read-only filesystem image (a layer disk)
// that serves both isolation modes. Images come from docker save tarballs, OCI layouts,
// root filesystem tarballs and registries (go-containerregistry).
//
// Tarballs are hostile input. It must not import vmm, guest or container.
package images
