package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Media types and annotations of the OCI image spec and containerd.
const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
	// annotationName is the full image name containerd's import gives the
	// image.
	annotationName = "io.containerd.image.name"
	// annotationRef is the OCI reference name: the tag.
	annotationRef = "org.opencontainers.image.ref.name"
)

// epoch is the modification time of every entry, so that builds repeat.
var epoch = time.Unix(0, 0).UTC()

// File is one file of the image's only layer.
type File struct {
	// Dest is the absolute path in the image.
	Dest string
	// Data is the content and Mode its permission bits.
	Data []byte
	Mode int64
}

// Image describes the image to write.
type Image struct {
	// Name is the full name, such as localhost/fljob-pause:dev.
	Name       string
	Entrypoint []string
	Files      []File
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string `json:"Entrypoint,omitempty"`
		WorkingDir string   `json:"WorkingDir"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "ociimage: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("ociimage", flag.ContinueOnError)
	name := fs.String("name", "", "full image `name`, for example localhost/fljob-pause:dev")
	entry := fs.String("entrypoint", "", "the image's entrypoint `path`")
	out := fs.String("out", "", "archive `file` to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *out == "" || fs.NArg() == 0 {
		return errors.New("usage: ociimage -name NAME -out FILE [-entrypoint PATH] DEST=SRC [DEST=SRC]")
	}
	img := Image{Name: *name}
	if *entry != "" {
		img.Entrypoint = []string{*entry}
	}
	for _, a := range fs.Args() {
		f, err := readFile(a)
		if err != nil {
			return err
		}
		img.Files = append(img.Files, f)
	}
	var buf bytes.Buffer
	if err := Write(&buf, img); err != nil {
		return err
	}
	// Write a new file and rename it, so that a reader never sees half an
	// archive.
	if err := os.WriteFile(*out+".tmp", buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if err := os.Rename(*out+".tmp", *out); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

// readFile reads the host file of one DEST=SRC argument.
func readFile(arg string) (File, error) {
	dest, src, ok := strings.Cut(arg, "=")
	if !ok || !path.IsAbs(dest) || src == "" {
		return File{}, fmt.Errorf("argument %q is not DEST=SRC with an absolute DEST", arg)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return File{}, fmt.Errorf("read %s: %w", src, err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return File{}, fmt.Errorf("stat %s: %w", src, err)
	}
	return File{Dest: path.Clean(dest), Data: data, Mode: int64(fi.Mode().Perm())}, nil
}

// Write writes img as an OCI image layout in one tar archive.
func Write(w io.Writer, img Image) error {
	layer, err := layerTar(img.Files)
	if err != nil {
		return err
	}
	layerDesc := describe(mediaLayer, layer)

	var cfg imageConfig
	cfg.Architecture, cfg.OS = runtime.GOARCH, "linux"
	cfg.Config.Entrypoint = img.Entrypoint
	cfg.Config.WorkingDir = "/"
	cfg.RootFS.Type = "layers"
	// The layer is not compressed, so its digest is its diff id.
	cfg.RootFS.DiffIDs = []string{layerDesc.Digest}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	cfgDesc := describe(mediaConfig, cfgJSON)

	manJSON, err := json.Marshal(manifest{SchemaVersion: 2, MediaType: mediaManifest,
		Config: cfgDesc, Layers: []descriptor{layerDesc}})
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	manDesc := describe(mediaManifest, manJSON)
	manDesc.Platform = &platform{Architecture: cfg.Architecture, OS: cfg.OS}
	manDesc.Annotations = map[string]string{annotationName: img.Name, annotationRef: tagOf(img.Name)}
	idxJSON, err := json.Marshal(index{SchemaVersion: 2, MediaType: mediaIndex,
		Manifests: []descriptor{manDesc}})
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}

	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idxJSON},
		{blobPath(layerDesc), layer},
		{blobPath(cfgDesc), cfgJSON},
		{blobPath(manDesc), manJSON},
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755,
			ModTime: epoch}); err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
	}
	for _, e := range entries {
		if err := writeEntry(tw, e.name, e.data, 0o644); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

// layerTar returns the layer: the files and their parent directories.
func layerTar(files []File) ([]byte, error) {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Dest < sorted[j].Dest })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range sorted {
		for _, d := range parents(f.Dest) {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/",
				Mode: 0o755, ModTime: epoch}); err != nil {
				return nil, fmt.Errorf("write layer: %w", err)
			}
		}
		if err := writeEntry(tw, strings.TrimPrefix(f.Dest, "/"), f.Data, f.Mode); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	return buf.Bytes(), nil
}

// parents returns the directories above the absolute path p, outermost
// first, without the leading slash: "/a/b/c" gives "a", "a/b".
func parents(p string) []string {
	var out []string
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		out = append([]string{strings.TrimPrefix(d, "/")}, out...)
	}
	return out
}

func writeEntry(tw *tar.Writer, name string, data []byte, mode int64) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)),
		ModTime: epoch}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func describe(mediaType string, data []byte) descriptor {
	sum := sha256.Sum256(data)
	return descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]),
		Size: int64(len(data))}
}

func blobPath(d descriptor) string {
	return "blobs/sha256/" + strings.TrimPrefix(d.Digest, "sha256:")
}

// tagOf returns the tag of an image name, or "latest".
func tagOf(name string) string {
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[i+1:]
	}
	return "latest"
}
