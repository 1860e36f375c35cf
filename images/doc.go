// Package images is hull's image store: content-addressed blobs, names and tags, image
// configs, and each layer converted once into a read-only filesystem image (a layer disk,
// uncompressed EROFS with overlayfs whiteouts) that serves both isolation modes. Images
// come from docker save tarballs, OCI layouts, root filesystem tarballs and registries
// (go-containerregistry). See docs/images.md for the layout on disk and the format.
//
// Tarballs, manifests and registries are hostile input: every path is resolved under the
// layer's own tree without following symlinks, and every digest is checked before an
// image is registered.
//
// It must not import vmm, guest or container: they import it.
package images
