package bundle

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func image(entrypoint, cmd, env []string, wd, user string) ocispec.Image {
	return ocispec.Image{Config: ocispec.ImageConfig{Entrypoint: entrypoint, Cmd: cmd, Env: env, WorkingDir: wd, User: user}}
}

const passwd = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\nnobody:x:65534:65534::/:/bin/false\napp:x:1000:1001::/home/app:/bin/sh\n"
const group = "root:x:0:\napp:x:1001:\nwheel:x:10:app,other\naudio:x:29:other\n"

func TestBuildProcess(t *testing.T) {
	tests := []struct {
		name    string
		img     ocispec.Image
		opts    Options
		args    []string
		cwd     string
		user    specs.User
		env     []string
		wantErr bool
	}{
		{
			name: "image command",
			img:  image(nil, []string{"sh"}, []string{"PATH=/bin"}, "", ""),
			args: []string{"sh"}, cwd: "/", env: []string{"PATH=/bin"},
		},
		{
			name: "user args replace cmd after entrypoint",
			img:  image([]string{"/entry", "-x"}, []string{"default"}, nil, "/srv", ""),
			opts: Options{Args: []string{"a", "b"}},
			args: []string{"/entry", "-x", "a", "b"}, cwd: "/srv", env: []string{defaultPath},
		},
		{
			name: "env merge, workdir, numeric user, hostname, tty",
			img:  image(nil, []string{"sh"}, []string{"A=1", "B=2"}, "/img", "app"),
			opts: Options{Env: []string{"B=3", "C=4"}, Workdir: "/w", User: "5:6", Hostname: "box", Terminal: true},
			args: []string{"sh"}, cwd: "/w", user: specs.User{UID: 5, GID: 6},
			env: []string{defaultPath, "HOSTNAME=box", "A=1", "B=3", "TERM=xterm", "C=4"},
		},
		{
			name: "image user by name with groups",
			img:  image(nil, []string{"sh"}, nil, "", "app"),
			opts: Options{Passwd: []byte(passwd), Group: []byte(group)},
			args: []string{"sh"}, cwd: "/", user: specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{10}}, env: []string{defaultPath},
		},
		{
			name: "name:group",
			img:  image(nil, []string{"sh"}, nil, "", ""),
			opts: Options{User: "nobody:wheel", Passwd: []byte(passwd), Group: []byte(group)},
			args: []string{"sh"}, cwd: "/", user: specs.User{UID: 65534, GID: 10}, env: []string{defaultPath},
		},
		{name: "no command", img: image(nil, nil, nil, "", ""), wantErr: true},
		{name: "relative workdir", img: image(nil, []string{"sh"}, nil, "", ""), opts: Options{Workdir: "w"}, wantErr: true},
		{name: "unknown user", img: image(nil, []string{"sh"}, nil, "", ""), opts: Options{User: "ghost", Passwd: []byte(passwd)}, wantErr: true},
		{name: "bad network", img: image(nil, []string{"sh"}, nil, "", ""), opts: Options{Network: "bridge"}, wantErr: true},
		{name: "tiny memory", img: image(nil, []string{"sh"}, nil, "", ""), opts: Options{Memory: 1024}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Build(tt.img, tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Build: err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			p := s.Process
			if !reflect.DeepEqual(p.Args, tt.args) || p.Cwd != tt.cwd || !reflect.DeepEqual(p.Env, tt.env) {
				t.Errorf("process = args %q cwd %q env %q, want %q %q %q", p.Args, p.Cwd, p.Env, tt.args, tt.cwd, tt.env)
			}
			if !reflect.DeepEqual(p.User, tt.user) {
				t.Errorf("user = %+v, want %+v", p.User, tt.user)
			}
			if p.Terminal != tt.opts.Terminal || s.Hostname != tt.opts.Hostname {
				t.Errorf("terminal %v hostname %q, want %v %q", p.Terminal, s.Hostname, tt.opts.Terminal, tt.opts.Hostname)
			}
		})
	}
}

func TestBuildLinux(t *testing.T) {
	img := image(nil, []string{"sh"}, nil, "", "")
	tests := []struct {
		name    string
		opts    Options
		ns      []specs.LinuxNamespaceType
		memory  int64
		swap    int64
		quota   int64
		mounts  []specs.Mount
		cgroups string
	}{
		{
			name: "defaults",
			ns:   []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace},
		},
		{
			name:    "host network, limits, cgroupns, volumes",
			opts:    Options{Network: NetworkHost, Memory: 256 << 20, CPUs: 1.5, CgroupNS: true, CgroupsPath: "/hull/x", Mounts: []Mount{{Source: "/data/", Destination: "/d", ReadOnly: true}, {Source: "/a", Destination: "/b"}}},
			ns:      []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.CgroupNamespace},
			memory:  256 << 20,
			swap:    256 << 20,
			quota:   150000,
			cgroups: "/hull/x",
			mounts: []specs.Mount{
				{Destination: "/d", Type: "bind", Source: "/data", Options: []string{"rbind", "rprivate", "ro"}},
				{Destination: "/b", Type: "bind", Source: "/a", Options: []string{"rbind", "rprivate"}},
			},
		},
		{
			name:   "no swap accounting",
			opts:   Options{Memory: 64 << 20, NoSwapLimit: true},
			ns:     []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace},
			memory: 64 << 20,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Build(img, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var ns []specs.LinuxNamespaceType
			for _, n := range s.Linux.Namespaces {
				ns = append(ns, n.Type)
			}
			if !reflect.DeepEqual(ns, tt.ns) {
				t.Errorf("namespaces = %v, want %v", ns, tt.ns)
			}
			var mem, swap, quota int64
			if m := s.Linux.Resources.Memory; m != nil {
				mem = *m.Limit
				if m.Swap != nil {
					swap = *m.Swap
				}
			}
			if c := s.Linux.Resources.CPU; c != nil {
				quota = *c.Quota
			}
			if mem != tt.memory || swap != tt.swap || quota != tt.quota {
				t.Errorf("memory %d swap %d quota %d, want %d %d %d", mem, swap, quota, tt.memory, tt.swap, tt.quota)
			}
			if s.Linux.CgroupsPath != tt.cgroups {
				t.Errorf("cgroups path %q, want %q", s.Linux.CgroupsPath, tt.cgroups)
			}
			if got := s.Mounts[len(defaultMounts()):]; !reflect.DeepEqual(got, tt.mounts) && len(got)+len(tt.mounts) > 0 {
				t.Errorf("user mounts = %+v, want %+v", got, tt.mounts)
			}
			for _, dst := range []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"} {
				if !slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == dst }) {
					t.Errorf("no %s mount", dst)
				}
			}
			if !reflect.DeepEqual(s.Process.Capabilities.Bounding, DefaultCapabilities()) || len(s.Process.Capabilities.Effective) != 14 {
				t.Errorf("capabilities = %+v", s.Process.Capabilities)
			}
			if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
				t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
			sc := s.Linux.Seccomp
			if sc == nil || sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) == 0 {
				t.Fatalf("seccomp = %+v, want Docker's default (errno by default, an allow list)", sc)
			}
			if s.Root.Path != RootfsDir || s.Root.Readonly {
				t.Errorf("root = %+v", s.Root)
			}
		})
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	s, err := Build(image(nil, []string{"true"}, nil, "", ""), Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, s); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Process.Args, s.Process.Args) || got.Hostname != "h" {
		t.Errorf("read back %+v", got.Process)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != ConfigFile {
		t.Errorf("bundle dir holds %v, want only %s", ents, ConfigFile)
	}
	if fi, err := os.Stat(filepath.Join(dir, ConfigFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode: %v %v", fi, err)
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "256m", want: 256 << 20}, {in: "1g", want: 1 << 30}, {in: "1GB", want: 1 << 30},
		{in: "512k", want: 512 << 10}, {in: "100", want: 100}, {in: "100b", want: 100},
		{in: "1.5m", want: 3 << 19}, {in: "", bad: true}, {in: "m", bad: true}, {in: "-1m", bad: true},
		{in: "1x", bad: true}, {in: "1e30t", bad: true}, {in: "NaN", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestParseMount(t *testing.T) {
	tests := []struct {
		in   string
		want Mount
		bad  bool
	}{
		{in: "/a:/b", want: Mount{Source: "/a", Destination: "/b"}},
		{in: "/a:/b:ro", want: Mount{Source: "/a", Destination: "/b", ReadOnly: true}},
		{in: "/a:/b:rw", want: Mount{Source: "/a", Destination: "/b"}},
		{in: "/a", bad: true}, {in: "/a:b", bad: true}, {in: "/a:/b:xx", bad: true}, {in: ":/b", bad: true}, {in: "/a:/b:ro:x", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseMount(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseMount(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestLookupUser(t *testing.T) {
	tests := []struct {
		spec string
		want specs.User
		bad  bool
	}{
		{spec: "", want: specs.User{}},
		{spec: "0", want: specs.User{}},
		{spec: "1000", want: specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{10}}},
		{spec: "1000:0", want: specs.User{UID: 1000, AdditionalGids: []uint32{10}}},
		{spec: "4242", want: specs.User{UID: 4242}},
		{spec: "4242:7", want: specs.User{UID: 4242, GID: 7}},
		{spec: "app:audio", want: specs.User{UID: 1000, GID: 29, AdditionalGids: []uint32{10}}},
		{spec: ":1", bad: true}, {spec: "1:", bad: true}, {spec: "nouser", bad: true}, {spec: "1:nogroup", bad: true},
		{spec: "-1", bad: true}, {spec: "99999999999", bad: true},
	}
	for _, tt := range tests {
		got, err := LookupUser(tt.spec, []byte(passwd), []byte(group))
		if (err != nil) != tt.bad || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("LookupUser(%q) = %+v, %v; want %+v, error %v", tt.spec, got, err, tt.want, tt.bad)
		}
	}
}

func FuzzLookupUser(f *testing.F) {
	f.Add("app:wheel", []byte(passwd), []byte(group))
	f.Add("0:0", []byte("::::\n"), []byte("a:b:c:d,e\n"))
	f.Fuzz(func(t *testing.T, spec string, pw, gr []byte) {
		u, err := LookupUser(spec, pw, gr)
		if err == nil && len(u.AdditionalGids) > maxAccountGroups {
			t.Fatalf("%d supplementary groups", len(u.AdditionalGids))
		}
	})
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"256m", "1.5g", "12", "kb", "1e308t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseBytes(s); err == nil && n < 0 {
			t.Fatalf("ParseBytes(%q) = %d", s, n)
		}
	})
}
