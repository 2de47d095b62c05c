// Command pause is the sandbox ("pause") image of the test node that
// hack/node.sh brings up: the first process of every Pod's sandbox, which
// holds the Pod's namespaces and does nothing else. It waits for SIGTERM or
// SIGINT and exits 0. It is built statically and packed into an OCI image
// by test/ociimage, because the node has no registry to pull
// registry.k8s.io/pause from.
package main
