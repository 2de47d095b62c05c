package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/localstore"
	"github.com/fljob-dev/fljob/validation"
)

// manifestExts are the file extensions read from a directory.
var manifestExts = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// document is one manifest document of an input file.
type document struct {
	// source names the file, and the document when the file holds several.
	source string
	data   []byte
}

// readDocuments reads every document of the files and directories named by
// paths ("-" is standard input). Directories contribute their .yaml, .yml
// and .json files, not their subdirectories.
func readDocuments(paths []string, stdin io.Reader) ([]document, error) {
	if len(paths) == 0 {
		return nil, errors.New("must specify one of -f or --filename")
	}
	var docs []document
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			ds, err := readFile(f, stdin)
			if err != nil {
				return nil, err
			}
			docs = append(docs, ds...)
		}
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no objects passed to apply: %s holds no manifest", strings.Join(paths, ", "))
	}
	return docs, nil
}

// expand turns a path into the manifest files it names.
func expand(p string) ([]string, error) {
	if p == "-" {
		return []string{p}, nil
	}
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the path %q does not exist", p)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && manifestExts[filepath.Ext(e.Name())] {
			files = append(files, filepath.Join(p, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}

// readFile splits a file into its non-empty YAML or JSON documents.
func readFile(name string, stdin io.Reader) ([]document, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		defer f.Close()
		r = f
	} else {
		name = "<stdin>"
	}
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []document
	for {
		data, err := yr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if isEmpty(data) {
			continue
		}
		docs = append(docs, document{data: data})
	}
	for i := range docs {
		docs[i].source = name
		if len(docs) > 1 {
			docs[i].source = fmt.Sprintf("%s (document %d)", name, i+1)
		}
	}
	return docs, nil
}

// isEmpty reports whether a document holds only blank lines, comments and
// separators.
func isEmpty(data []byte) bool {
	for _, line := range bytes.Split(data, []byte("\n")) {
		l := strings.TrimSpace(string(line))
		if l != "" && !strings.HasPrefix(l, "#") && l != "---" {
			return false
		}
	}
	return true
}

// object is a decoded manifest: an FLJob or a Secret.
type object struct {
	source string
	fljob  *unstructured.Unstructured
	secret *corev1.Secret
}

var secretGVK = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}

// key returns the object's namespace and name.
func (o *object) key() backends.Key {
	if o.secret != nil {
		return backends.Key{Namespace: o.secret.Namespace, Name: o.secret.Name}
	}
	return backends.Key{Namespace: o.fljob.GetNamespace(), Name: o.fljob.GetName()}
}

// kind returns the resource of the object as kubectl names it.
func (o *object) kind() string {
	if o.secret != nil {
		return "secret"
	}
	return "fljob.fljob.dev"
}

// nsPolicy is how manifests get their namespace: the -n flag fills in a
// missing one and, when given explicitly, must match a set one.
type nsPolicy struct {
	namespace string
	enforce   bool
}

// decode turns a document into an object with its namespace set, checking
// it strictly as the API server's decoder does.
func decode(doc document, v *validation.Validator, ns nsPolicy) (*object, error) {
	obj, err := validation.DecodeDocument(doc.data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", doc.source, err)
	}
	u := &unstructured.Unstructured{Object: obj}
	gvk := u.GroupVersionKind()
	o := &object{source: doc.source}
	switch {
	case gvk.Kind == "" || u.GetAPIVersion() == "":
		return nil, fmt.Errorf("%s: apiVersion and kind must be set", doc.source)
	case gvk == v.GroupVersionKind():
		if o.fljob, err = v.Decode(doc.data); err != nil {
			return nil, fmt.Errorf("%s: %w", doc.source, err)
		}
	case gvk == secretGVK:
		if o.secret, err = localstore.DecodeSecret(doc.data); err != nil {
			return nil, fmt.Errorf("%s: %w", doc.source, err)
		}
	default:
		return nil, fmt.Errorf("%s: no kind %q is registered for version %q: fljob handles %s (%s) and Secret (v1)",
			doc.source, gvk.Kind, gvk.GroupVersion(), fljobv1.Kind, fljobv1.GroupVersion)
	}
	if err := o.setNamespace(ns); err != nil {
		return nil, fmt.Errorf("%s: %w", doc.source, err)
	}
	return o, nil
}

func (o *object) setNamespace(p nsPolicy) error {
	ns := o.key().Namespace
	switch {
	case ns == "":
		ns = p.namespace
	case p.enforce && ns != p.namespace:
		return fmt.Errorf("the namespace from the provided object %q does not match the namespace %q. "+
			"You must pass '--namespace=%s' to perform this operation", ns, p.namespace, ns)
	}
	if o.secret != nil {
		o.secret.Namespace = ns
	} else {
		o.fljob.SetNamespace(ns)
	}
	return nil
}

// nameOnly returns an FLJob object that only names one, for commands that
// take names.
func nameOnly(namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}
