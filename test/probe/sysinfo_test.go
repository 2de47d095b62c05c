package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fljob-dev/fljob/test/probe/report"
)

func TestFormatMode(t *testing.T) {
	tests := []struct {
		name string
		mode uint32
		want string
	}{
		{"sticky world-writable dir", syscall.S_IFDIR | 0o1777, "1777"},
		{"plain dir", syscall.S_IFDIR | 0o755, "0755"},
		{"regular file", syscall.S_IFREG | 0o644, "0644"},
		{"setgid dir", syscall.S_IFDIR | 0o2775, "2775"},
		{"setuid file", syscall.S_IFREG | 0o4755, "4755"},
		{"fsGroup memory emptyDir", syscall.S_IFDIR | 0o3777, "3777"},
		{"no bits", syscall.S_IFDIR, "0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, formatMode(tt.mode)); diff != "" {
				t.Errorf("formatMode(%o) (-want +got):\n%s", tt.mode, diff)
			}
		})
	}
}

func TestUnixMode(t *testing.T) {
	tests := []struct {
		name string
		mode fs.FileMode
		want uint32
	}{
		{"sticky dir", fs.ModeDir | fs.ModeSticky | 0o777, 0o1777},
		{"setgid dir", fs.ModeDir | fs.ModeSetgid | 0o775, 0o2775},
		{"setuid file", fs.ModeSetuid | 0o755, 0o4755},
		{"plain file", 0o644, 0o644},
		{"all special bits", fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o700, 0o7700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, unixMode(tt.mode)); diff != "" {
				t.Errorf("unixMode(%v) (-want +got):\n%s", tt.mode, diff)
			}
		})
	}
}

func TestErrnoName(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"path error", &fs.PathError{Op: "open", Path: "/x", Err: syscall.EROFS}, "EROFS"},
		{"wrapped", fmt.Errorf("create: %w", &fs.PathError{Err: syscall.EACCES}), "EACCES"},
		{"bare errno", syscall.ENOSPC, "ENOSPC"},
		{"joined", errors.Join(errors.New("first"), syscall.ECONNREFUSED), "ECONNREFUSED"},
		{"unnamed errno", syscall.Errno(200), "errno 200"},
		{"no errno", errors.New("plain"), ""},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, errnoName(tt.err)); diff != "" {
				t.Errorf("errnoName(%v) (-want +got):\n%s", tt.err, diff)
			}
		})
	}
}

// mountinfoSample mixes a container's typical mounts: overlay root, a tmpfs
// workspace with binds beneath it, escaped names and several optional fields.
const mountinfoSample = `
812 700 0:50 / / rw,relatime master:300 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
813 812 0:53 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
820 812 0:60 / /var/tmp/nvflare/workspace rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=1777
821 820 254:0 /srv/site/startup /var/tmp/nvflare/workspace/startup ro,relatime - ext4 /dev/vda rw
822 820 254:0 /srv/jobs/j1 /var/tmp/nvflare/workspace/j1 rw,relatime shared:1 master:2 - ext4 /dev/vda rw
823 812 0:61 / /mnt/with\040space rw - tmpfs my\134src rw,size=1024k
`

func TestParseMountinfo(t *testing.T) {
	got, err := parseMountinfo(strings.NewReader(mountinfoSample))
	if err != nil {
		t.Fatalf("parseMountinfo: %v", err)
	}
	want := []report.Mount{
		{MountPoint: "/", FSType: "overlay", Source: "overlay",
			Options:      []string{"rw", "relatime"},
			SuperOptions: []string{"rw", "lowerdir=/l", "upperdir=/u", "workdir=/w"}},
		{MountPoint: "/proc", FSType: "proc", Source: "proc",
			Options:      []string{"rw", "nosuid", "nodev", "noexec", "relatime"},
			SuperOptions: []string{"rw"}},
		{MountPoint: "/var/tmp/nvflare/workspace", FSType: "tmpfs", Source: "tmpfs",
			Options:      []string{"rw", "nosuid", "nodev", "noexec", "relatime"},
			SuperOptions: []string{"rw", "mode=1777"}},
		{MountPoint: "/var/tmp/nvflare/workspace/startup", FSType: "ext4", Source: "/dev/vda",
			Options: []string{"ro", "relatime"}, SuperOptions: []string{"rw"}, ReadOnly: true},
		{MountPoint: "/var/tmp/nvflare/workspace/j1", FSType: "ext4", Source: "/dev/vda",
			Options: []string{"rw", "relatime"}, SuperOptions: []string{"rw"}},
		{MountPoint: "/mnt/with space", FSType: "tmpfs", Source: `my\src`,
			Options: []string{"rw"}, SuperOptions: []string{"rw", "size=1024k"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseMountinfo (-want +got):\n%s", diff)
	}
}

func TestParseMountinfoErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		{"no separator", "1 0 0:1 / / rw - \n"},
		{"too short after separator", "1 0 0:1 / / rw - tmpfs\n"},
		{"fixed fields missing", "1 0 - tmpfs tmpfs rw\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseMountinfo(strings.NewReader(tt.input)); err == nil {
				t.Errorf("parseMountinfo(%q) succeeded, want an error", tt.input)
			}
		})
	}
}

func TestFindMount(t *testing.T) {
	mounts, err := parseMountinfo(strings.NewReader(mountinfoSample +
		"830 820 0:70 / /var/tmp/nvflare/workspace rw - tmpfs over rw,mode=755\n"))
	if err != nil {
		t.Fatalf("parseMountinfo: %v", err)
	}
	tests := []struct {
		name      string
		path      string
		wantPoint string
		wantSrc   string
	}{
		{"root file", "/etc/passwd", "/", "overlay"},
		{"the mount point itself", "/proc", "/proc", "proc"},
		{"prefix that is no parent", "/procx/1", "/", "overlay"},
		{"bind beneath tmpfs", "/var/tmp/nvflare/workspace/startup/x.crt",
			"/var/tmp/nvflare/workspace/startup", "/dev/vda"},
		{"over-mounted point: last wins", "/var/tmp/nvflare/workspace/other",
			"/var/tmp/nvflare/workspace", "over"},
		{"sibling with common prefix", "/var/tmp/nvflare/workspace2",
			"/", "overlay"},
		{"escaped mount point", "/mnt/with space/f", "/mnt/with space", `my\src`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := findMount(mounts, tt.path)
			if !ok {
				t.Fatalf("findMount(%q) found nothing", tt.path)
			}
			got := [2]string{m.MountPoint, m.Source}
			if diff := cmp.Diff([2]string{tt.wantPoint, tt.wantSrc}, got); diff != "" {
				t.Errorf("findMount(%q) (-want +got):\n%s", tt.path, diff)
			}
		})
	}
	if _, ok := findMount(mounts, "relative/path"); ok {
		t.Errorf("findMount found a mount for a relative path")
	}
}

// statusSample is an excerpt of /proc/self/status of a process with all
// capabilities dropped, no_new_privs set and a seccomp filter.
const statusSample = `Name:	probe
Umask:	0022
State:	R (running)
Uid:	1000	1000	1000	1000
Gid:	1000	1000	1000	1000
Groups:	1000
CapInh:	0000000000000000
CapPrm:	0000000000000000
CapEff:	0000000000000000
CapBnd:	00000000a80425fb
CapAmb:	0000000000000000
NoNewPrivs:	1
Seccomp:	2
Seccomp_filters:	1
Speculation_Store_Bypass:	thread force mitigated
`

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    report.Process
		wantErr string
	}{
		{
			name:  "restricted process",
			input: statusSample,
			want: report.Process{CapInh: "0000000000000000", CapPrm: "0000000000000000",
				CapEff: "0000000000000000", CapBnd: "00000000a80425fb",
				CapAmb: "0000000000000000", NoNewPrivs: 1, Seccomp: 2},
		},
		{
			name:    "seccomp and ambient missing",
			input:   "CapInh:\t0\nCapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\nNoNewPrivs:\t0\n",
			want:    report.Process{CapInh: "0", CapPrm: "0", CapEff: "0", CapBnd: "0"},
			wantErr: "status lacks CapAmb, Seccomp",
		},
		{
			name:    "capability not hex",
			input:   "CapEff:\tzz\n",
			wantErr: `status field CapEff: strconv.ParseUint: parsing "zz": invalid syntax`,
		},
		{
			name:  "seccomp not a number",
			input: strings.Replace(statusSample, "Seccomp:\t2", "Seccomp:\tx", 1),
			want: report.Process{CapInh: "0000000000000000", CapPrm: "0000000000000000",
				CapEff: "0000000000000000", CapBnd: "00000000a80425fb",
				CapAmb: "0000000000000000", NoNewPrivs: 1},
			wantErr: `status field Seccomp: strconv.Atoi: parsing "x": invalid syntax`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus(strings.NewReader(tt.input))
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Errorf("parseStatus error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseStatus (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseStatusOfThisProcess(t *testing.T) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatalf("open status: %v", err)
	}
	defer f.Close()
	p, err := parseStatus(f)
	if err != nil {
		t.Fatalf("parseStatus: %v", err)
	}
	if len(p.CapBnd) != 16 {
		t.Errorf("CapBnd = %q, want 16 hex digits", p.CapBnd)
	}
}
