package report

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeAndLookup(t *testing.T) {
	const doc = `{"uid": 1000, "root": {"path": "/w", "exists": true, "mode": "1777",
		"sticky": true, "mkdir": {"ok": true}},
		"startup": [{"path": "/w/startup", "write": {"errno": "EROFS"}}],
		"jobDir": {"path": "/w/j1", "write": {"ok": true}},
		"checks": [{"path": "/x", "write": {"errno": "EACCES"}}]}`
	rep, err := Decode(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want Path
		ok   bool
	}{
		{"/w", Path{Path: "/w", Exists: true, Mode: "1777"}, true},
		{"/w/startup", Path{Path: "/w/startup", Write: Attempt{Errno: "EROFS"}}, true},
		{"/w/j1", Path{Path: "/w/j1", Write: Attempt{OK: true}}, true},
		{"/x", Path{Path: "/x", Write: Attempt{Errno: "EACCES"}}, true},
		{"/w/local", Path{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := rep.Lookup(tt.path)
			if ok != tt.ok {
				t.Errorf("Lookup(%q) found %v, want %v", tt.path, ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Lookup(%q) (-want +got):\n%s", tt.path, diff)
			}
		})
	}
	if rep.UID != 1000 || !rep.Root.Sticky || !rep.Root.Mkdir.OK {
		t.Errorf("decoded %+v", rep)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	if _, err := Decode(strings.NewReader("probe: not json")); err == nil {
		t.Error("Decode succeeded on garbage")
	}
}
