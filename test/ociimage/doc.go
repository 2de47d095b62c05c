// Command ociimage writes a one-layer OCI image archive without a registry,
// a daemon or a base image: an OCI image layout (oci-layout, index.json and
// blobs) as one tar file, which `ctr images import` loads into containerd.
//
//	ociimage -name localhost/fljob-pause:dev -entrypoint /pause -out pause.tar /pause=bin/pause
//
// Each argument DEST=SRC puts the host file SRC into the image at the
// absolute path DEST, with SRC's permission bits, owned by root. The layer is
// an uncompressed tar with fixed timestamps, so the same inputs give the same
// image digest. hack/node.sh uses it for the test node's sandbox image.
package main
