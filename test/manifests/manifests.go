package manifests

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/yaml"
)

// Namespace is the namespace every manifest of the table lives in.
const Namespace = "default"

// Case is one manifest and the rejection it must get.
type Case struct {
	// Name describes the case.
	Name string
	// Base, when set, is a valid manifest of the same FLJob created first;
	// YAML is then applied to it as an update.
	Base string
	// YAML is the manifest, one document.
	YAML string
	// WantField is the field path the rejection names, as the API server
	// writes it (spec.jobID, spec.env[0].name, metadata.name).
	WantField string
	// WantMsg is a part of the rejection's message for that field.
	WantMsg string
}

// Check reports whether err is the rejection the case wants: an Invalid
// error with a cause for WantField whose message holds WantMsg, or another
// error (a strict decoding error of unknown fields) whose message holds
// both.
func (c Case) Check(err error) error {
	if err == nil {
		return fmt.Errorf("%s: accepted, want a rejection naming %s", c.Name, c.WantField)
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Details != nil && len(st.Status().Details.Causes) > 0 {
		for _, cause := range st.Status().Details.Causes {
			if cause.Field == c.WantField && strings.Contains(cause.Message, c.WantMsg) {
				return nil
			}
		}
		return fmt.Errorf("%s: rejected without a cause %s %q: %w", c.Name, c.WantField, c.WantMsg, err)
	}
	if msg := err.Error(); strings.Contains(msg, c.WantField) && strings.Contains(msg, c.WantMsg) {
		return nil
	}
	return fmt.Errorf("%s: rejection does not name %s with %q: %w", c.Name, c.WantField, c.WantMsg, err)
}

// Manifest is an FLJob manifest under construction, as a JSON object.
type Manifest map[string]any

// client returns a valid client FLJob manifest named name.
func client(name string) Manifest {
	return Manifest{
		"apiVersion": "fljob.dev/v1",
		"kind":       "FLJob",
		"metadata":   map[string]any{"name": name, "namespace": Namespace},
		"spec": map[string]any{
			"jobID": "fedavg-1",
			"role":  "Client",
			"site":  "site-1",
			"image": "fljob-fedavg:dev",
			"args":  []any{"client", "--server", "server:8002", "--site", "site-1"},
			"workspace": map[string]any{
				"source": map[string]any{"hostPath": map[string]any{"path": "/srv/fljob/site-1"}},
			},
		},
	}
}

// server returns a valid server FLJob manifest named name.
func server(name string) Manifest {
	m := client(name)
	spec := m.spec()
	spec["role"] = "Server"
	spec["site"] = "server"
	spec["args"] = []any{"server", "--clients", "2"}
	spec["ports"] = []any{map[string]any{"name": "fl", "containerPort": 8002}}
	spec["workspace"] = map[string]any{
		"source": map[string]any{"hostPath": map[string]any{"path": "/srv/fljob/server"}},
	}
	return m
}

func (m Manifest) spec() map[string]any { return m["spec"].(map[string]any) }

// set sets the value at a dotted path, creating objects on the way.
func (m Manifest) set(path string, v any) Manifest {
	keys := strings.Split(path, ".")
	obj := map[string]any(m)
	for _, k := range keys[:len(keys)-1] {
		next, ok := obj[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[k] = next
		}
		obj = next
	}
	obj[keys[len(keys)-1]] = v
	return m
}

// del removes the value at a dotted path.
func (m Manifest) del(path string) Manifest {
	keys := strings.Split(path, ".")
	obj := map[string]any(m)
	for _, k := range keys[:len(keys)-1] {
		obj = obj[k].(map[string]any)
	}
	delete(obj, keys[len(keys)-1])
	return m
}

// YAML renders the manifest.
func (m Manifest) YAML() string {
	b, err := yaml.Marshal(map[string]any(m))
	if err != nil {
		panic(err)
	}
	return string(b)
}
