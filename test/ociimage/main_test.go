package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readTar returns the regular files of an archive by name.
func readTar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = b
	}
}

// blob returns the blob a descriptor names, after checking its digest and
// size.
func blob(t *testing.T, files map[string][]byte, d descriptor) []byte {
	t.Helper()
	b, ok := files[blobPath(d)]
	if !ok {
		t.Fatalf("no blob %s in the archive", d.Digest)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s has digest %s and size %d, descriptor says size %d", blobPath(d), got,
			len(b), d.Size)
	}
	return b
}

func TestWrite(t *testing.T) {
	img := Image{Name: "localhost/fljob-pause:dev", Entrypoint: []string{"/pause"},
		Files: []File{{Dest: "/bin/pause", Data: []byte("binary"), Mode: 0o755}}}
	var buf bytes.Buffer
	if err := Write(&buf, img); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, buf.Bytes())
	if got := string(files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", got)
	}

	var idx index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(idx.Manifests))
	}
	wantAnn := map[string]string{annotationName: "localhost/fljob-pause:dev", annotationRef: "dev"}
	if diff := cmp.Diff(wantAnn, idx.Manifests[0].Annotations); diff != "" {
		t.Errorf("index annotations (-want +got):\n%s", diff)
	}

	var man manifest
	if err := json.Unmarshal(blob(t, files, idx.Manifests[0]), &man); err != nil {
		t.Fatal(err)
	}
	var cfg imageConfig
	if err := json.Unmarshal(blob(t, files, man.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/pause"}, cfg.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if len(man.Layers) != 1 || cfg.RootFS.DiffIDs[0] != man.Layers[0].Digest {
		t.Fatalf("layers %+v do not match diff ids %v", man.Layers, cfg.RootFS.DiffIDs)
	}

	layer := blob(t, files, man.Layers[0])
	var names []string
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Name == "bin/pause" && hdr.Mode != 0o755 {
			t.Errorf("bin/pause has mode %o, want 755", hdr.Mode)
		}
	}
	if diff := cmp.Diff([]string{"bin/", "bin/pause"}, names); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
	if got := string(readTar(t, layer)["bin/pause"]); got != "binary" {
		t.Errorf("bin/pause holds %q", got)
	}

	// The same inputs give the same archive.
	var again bytes.Buffer
	if err := Write(&again, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two writes of one image differ")
	}
}

func TestTagOf(t *testing.T) {
	for name, want := range map[string]string{
		"localhost/fljob-pause:dev": "dev",
		"localhost:5000/pause":      "latest",
		"pause":                     "latest",
	} {
		if got := tagOf(name); got != want {
			t.Errorf("tagOf(%q) = %q, want %q", name, got, want)
		}
	}
}
