package manifests

import "strings"

const (
	msgSegment   = "must be one path segment"
	msgAbsolute  = "must be an absolute path other than /"
	msgCPU       = "must be more than 0 and at most 1024 cores"
	msgMemory    = "must be at least 4Mi and at most 16Ti"
	msgOneSource = "exactly one of hostPath or volume must be set"
	msgName      = "metadata.name must be a DNS label of at most 52 characters"
)

// Valid are manifests both modes accept.
var Valid = []Case{
	{Name: "client with host path", YAML: client("site-1").YAML()},
	{Name: "server with a port", YAML: server("server").YAML()},
	{Name: "client with a named volume, limits and a secret", YAML: client("site-2").
		set("spec.site", "site-2").
		set("spec.workspace", map[string]any{
			"mountPath": "/workspace",
			"sizeLimit": "256Mi",
			"source":    map[string]any{"volume": map[string]any{"name": "site-2-ws"}},
		}).
		set("spec.resources", map[string]any{"cpu": "500m", "memory": "1Gi", "gpus": 1}).
		set("spec.env", []any{
			map[string]any{"name": "MODE", "value": "demo"},
			map[string]any{"name": "TOKEN", "valueFrom": map[string]any{
				"secretKeyRef": map[string]any{"name": "site-2-token", "key": "token"}}},
		}).
		set("spec.runAsUser", 2000).
		set("spec.runAsGroup", 2000).
		set("spec.backoffLimit", 2).
		set("spec.activeDeadlineSeconds", 3600).
		set("spec.ttlSecondsAfterFinished", 0).YAML()},
	{Name: "re-apply with a changed image", Base: client("site-1").YAML(),
		YAML: client("site-1").set("spec.image", "fljob-fedavg:v2").YAML()},
}

// Invalid are manifests both modes reject, each with the field its
// rejection names.
var Invalid = []Case{
	{Name: "jobID with ..", YAML: client("a").set("spec.jobID", "../x").YAML(),
		WantField: "spec.jobID", WantMsg: msgSegment},
	{Name: "jobID with a slash", YAML: client("a").set("spec.jobID", "a/b").YAML(),
		WantField: "spec.jobID", WantMsg: msgSegment},
	{Name: "jobID starting with a dot", YAML: client("a").set("spec.jobID", ".hidden").YAML(),
		WantField: "spec.jobID", WantMsg: msgSegment},
	{Name: "empty jobID", YAML: client("a").set("spec.jobID", "").YAML(),
		WantField: "spec.jobID", WantMsg: "should be at least 1 chars long"},
	{Name: "jobID too long", YAML: client("a").set("spec.jobID", strings.Repeat("j", 129)).YAML(),
		WantField: "spec.jobID", WantMsg: "may not be more than 128 bytes"},
	{Name: "jobID startup", YAML: client("a").set("spec.jobID", "startup").YAML(),
		WantField: "spec.jobID", WantMsg: "must not be startup or local"},
	{Name: "jobID local", YAML: client("a").set("spec.jobID", "local").YAML(),
		WantField: "spec.jobID", WantMsg: "must not be startup or local"},
	{Name: "no jobID", YAML: client("a").del("spec.jobID").YAML(),
		WantField: "spec.jobID", WantMsg: "Required value"},
	{Name: "unknown role", YAML: client("a").set("spec.role", "Observer").YAML(),
		WantField: "spec.role", WantMsg: `Unsupported value: "Observer"`},
	{Name: "no image", YAML: client("a").del("spec.image").YAML(),
		WantField: "spec.image", WantMsg: "Required value"},
	{Name: "unknown pull policy", YAML: client("a").set("spec.imagePullPolicy", "Sometimes").YAML(),
		WantField: "spec.imagePullPolicy", WantMsg: `Unsupported value: "Sometimes"`},
	{Name: "negative cpu", YAML: client("a").set("spec.resources.cpu", "-1").YAML(),
		WantField: "spec.resources.cpu", WantMsg: msgCPU},
	{Name: "absurd cpu", YAML: client("a").set("spec.resources.cpu", "5000").YAML(),
		WantField: "spec.resources.cpu", WantMsg: msgCPU},
	{Name: "cpu not a quantity", YAML: client("a").set("spec.resources.cpu", "two").YAML(),
		WantField: "spec.resources.cpu", WantMsg: "should match"},
	{Name: "tiny memory", YAML: client("a").set("spec.resources.memory", "1Ki").YAML(),
		WantField: "spec.resources.memory", WantMsg: msgMemory},
	{Name: "absurd memory", YAML: client("a").set("spec.resources.memory", "100Ti").YAML(),
		WantField: "spec.resources.memory", WantMsg: msgMemory},
	{Name: "negative gpus", YAML: client("a").set("spec.resources.gpus", -1).YAML(),
		WantField: "spec.resources.gpus", WantMsg: "should be greater than or equal to 0"},
	{Name: "absurd gpus", YAML: client("a").set("spec.resources.gpus", 64).YAML(),
		WantField: "spec.resources.gpus", WantMsg: "should be less than or equal to 16"},
	{Name: "both workspace sources", YAML: client("a").
		set("spec.workspace.source.volume", map[string]any{"name": "ws"}).YAML(),
		WantField: "spec.workspace.source", WantMsg: msgOneSource},
	{Name: "no workspace source", YAML: client("a").
		set("spec.workspace.source", map[string]any{}).YAML(),
		WantField: "spec.workspace.source", WantMsg: msgOneSource},
	{Name: "relative host path", YAML: client("a").
		set("spec.workspace.source.hostPath.path", "srv/site-1").YAML(),
		WantField: "spec.workspace.source.hostPath.path", WantMsg: msgAbsolute},
	{Name: "host path /", YAML: client("a").
		set("spec.workspace.source.hostPath.path", "/").YAML(),
		WantField: "spec.workspace.source.hostPath.path", WantMsg: msgAbsolute},
	{Name: "host path with ..", YAML: client("a").
		set("spec.workspace.source.hostPath.path", "/srv/../etc").YAML(),
		WantField: "spec.workspace.source.hostPath.path", WantMsg: "must not contain '..' segments"},
	{Name: "bad volume name", YAML: client("a").
		set("spec.workspace.source", map[string]any{"volume": map[string]any{"name": "Bad_Vol"}}).YAML(),
		WantField: "spec.workspace.source.volume.name", WantMsg: "must be lowercase letters"},
	{Name: "relative mount path", YAML: client("a").set("spec.workspace.mountPath", "workspace").YAML(),
		WantField: "spec.workspace.mountPath", WantMsg: msgAbsolute},
	{Name: "absurd workspace size", YAML: client("a").set("spec.workspace.sizeLimit", "2Ti").YAML(),
		WantField: "spec.workspace.sizeLimit", WantMsg: "must be more than 0 and at most 1Ti"},
	{Name: "root user", YAML: client("a").set("spec.runAsUser", 0).YAML(),
		WantField: "spec.runAsUser", WantMsg: "must be a non-root uid"},
	{Name: "root group", YAML: client("a").set("spec.runAsGroup", 0).YAML(),
		WantField: "spec.runAsGroup", WantMsg: "must be a non-root gid"},
	{Name: "user not a number", YAML: client("a").set("spec.runAsUser", "abc").YAML(),
		WantField: "spec.runAsUser", WantMsg: "must be of type integer"},
	{Name: "server without ports", YAML: server("a").del("spec.ports").YAML(),
		WantField: "spec.ports", WantMsg: "a Server job must declare at least one port"},
	{Name: "port out of range", YAML: server("a").
		set("spec.ports", []any{map[string]any{"containerPort": 70000}}).YAML(),
		WantField: "spec.ports[0].containerPort", WantMsg: "should be less than or equal to 65535"},
	{Name: "env value and valueFrom", YAML: client("a").set("spec.env", []any{map[string]any{
		"name": "A", "value": "x", "valueFrom": map[string]any{
			"secretKeyRef": map[string]any{"name": "s", "key": "k"}}}}).YAML(),
		WantField: "spec.env[0]", WantMsg: "value and valueFrom are mutually exclusive"},
	{Name: "env name not an identifier", YAML: client("a").
		set("spec.env", []any{map[string]any{"name": "1BAD", "value": "x"}}).YAML(),
		WantField: "spec.env[0].name", WantMsg: "must be a C identifier"},
	{Name: "duplicate env name", YAML: client("a").set("spec.env", []any{
		map[string]any{"name": "A", "value": "x"}, map[string]any{"name": "A", "value": "y"}}).YAML(),
		WantField: "spec.env[1]", WantMsg: "Duplicate value"},
	{Name: "negative backoffLimit", YAML: client("a").set("spec.backoffLimit", -1).YAML(),
		WantField: "spec.backoffLimit", WantMsg: "should be greater than or equal to 0"},
	{Name: "zero activeDeadlineSeconds", YAML: client("a").set("spec.activeDeadlineSeconds", 0).YAML(),
		WantField: "spec.activeDeadlineSeconds", WantMsg: "should be greater than or equal to 1"},
	{Name: "no name", YAML: client("a").del("metadata.name").YAML(),
		WantField: "metadata.name", WantMsg: "Required value"},
	{Name: "name with an underscore", YAML: client("fed_avg").YAML(),
		WantField: "metadata.name", WantMsg: "a lowercase RFC 1123 subdomain"},
	{Name: "name starting with a digit", YAML: client("1server").YAML(),
		WantField: "<nil>", WantMsg: msgName},
	{Name: "name too long for a label", YAML: client(strings.Repeat("n", 53)).YAML(),
		WantField: "<nil>", WantMsg: msgName},
	{Name: "unknown field", YAML: client("a").set("spec.foo", "bar").YAML(),
		WantField: "spec.foo", WantMsg: `unknown field "spec.foo"`},
	{Name: "unknown nested field", YAML: client("a").
		set("spec.workspace.source.hostPath.type", "Directory").YAML(),
		WantField: "spec.workspace.source.hostPath.type",
		WantMsg:   `unknown field "spec.workspace.source.hostPath.type"`},
	{Name: "changed jobID", Base: client("a").YAML(), YAML: client("a").set("spec.jobID", "fedavg-2").YAML(),
		WantField: "spec.jobID", WantMsg: "jobID is immutable"},
	{Name: "changed role", Base: client("a").YAML(), YAML: client("a").set("spec.role", "Server").
		set("spec.ports", []any{map[string]any{"containerPort": 8002}}).YAML(),
		WantField: "spec.role", WantMsg: "role is immutable"},
	{Name: "changed site", Base: client("a").YAML(), YAML: client("a").set("spec.site", "site-9").YAML(),
		WantField: "spec.site", WantMsg: "site is immutable"},
}
