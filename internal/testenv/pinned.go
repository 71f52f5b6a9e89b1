package testenv

import (
	"bufio"
	"debug/buildinfo"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// pin is what tools/<dir>/go.mod pins for one binary: the module that
// holds its main package, at a version.
type pin struct {
	dir, module, version string
}

// pins reads every tools/*/go.mod of the repository: binary name → pin.
// A binary is named after its main package's last element, as tools.sh
// names it (the Compose CLI's "cmd" is docker-compose).
func pins() (map[string]pin, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return nil, fmt.Errorf("cannot locate the repository's tools/")
	}
	mods, err := filepath.Glob(filepath.Join(filepath.Dir(self), "..", "..", "tools", "*", "go.mod"))
	if err != nil || len(mods) == 0 {
		return nil, fmt.Errorf("no tools/*/go.mod beside %s: %v", self, err)
	}
	out := map[string]pin{}
	for _, mod := range mods {
		tools, requires, err := readGoMod(mod)
		if err != nil {
			return nil, err
		}
		for _, pkg := range tools {
			p := pin{dir: filepath.Base(filepath.Dir(mod))}
			for m, v := range requires { // the longest module path that holds pkg
				if (pkg == m || strings.HasPrefix(pkg, m+"/")) && len(m) > len(p.module) {
					p.module, p.version = m, v
				}
			}
			name := path.Base(pkg)
			if name == "cmd" {
				name = "docker-compose"
			}
			out[name] = p
		}
	}
	return out, nil
}

// readGoMod returns the tool directives and the required module versions
// of a go.mod.
func readGoMod(file string) (tools []string, requires map[string]string, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	requires = map[string]string{}
	block := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == ")":
			block = ""
		case len(fields) == 2 && fields[1] == "(":
			block = fields[0]
		case block == "tool" && len(fields) == 1:
			tools = append(tools, fields[0])
		case fields[0] == "tool" && len(fields) == 2:
			tools = append(tools, fields[1])
		case block == "require" && len(fields) == 2:
			requires[fields[0]] = fields[1]
		case fields[0] == "require" && len(fields) == 3:
			requires[fields[1]] = fields[2]
		}
	}
	return tools, requires, sc.Err()
}

// checkPinned says why the binary at bin is not the version of name that
// tools/ pins: not a Go binary (Debian's docker-compose 1.29 is Python),
// or built from another version of the module.
func checkPinned(name, bin string) error {
	all, err := pins()
	if err != nil {
		return err
	}
	p, ok := all[name]
	if !ok {
		return nil // not a pinned tool
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("%s on PATH (%s) is not the pinned %s %s: it is not a Go binary built from it (%v)", name, bin, p.module, p.version, err)
	}
	found := ""
	if info.Main.Path == p.module {
		found = info.Main.Version
	}
	for _, d := range info.Deps {
		if d.Path == p.module {
			found = d.Version
			if d.Replace != nil {
				found = d.Replace.Version
			}
		}
	}
	switch found {
	case p.version:
		return nil
	case "":
		return fmt.Errorf("%s on PATH (%s) is not the pinned %s %s: it was not built from that module", name, bin, p.module, p.version)
	}
	return fmt.Errorf("%s on PATH (%s) is %s %s, the tests need the pinned %s", name, bin, p.module, found, p.version)
}

// waitForBuild waits while scripts/tools.sh builds dir in the background
// (`tools.sh --background`, as make test starts trivy's slow build): its
// lock file names the builder's PID. A lock whose builder is gone (killed)
// does not hold anyone up.
func waitForBuild(t interface{ Logf(string, ...any) }, name string) {
	all, err := pins()
	if err != nil {
		return
	}
	p, ok := all[name]
	if !ok {
		return
	}
	lock := filepath.Join(filepath.Dir(ToolsDir()), "building", p.dir)
	start, said := time.Now(), time.Time{}
	for {
		data, err := os.ReadFile(lock)
		if err != nil {
			return
		}
		var pid int
		if _, err := fmt.Sscan(string(data), &pid); err != nil || pid <= 0 || syscall.Kill(pid, 0) == syscall.ESRCH {
			return
		}
		if time.Since(said) > time.Minute {
			t.Logf("waiting for scripts/tools.sh to finish building %s (pid %d; %s so far; log: %s.log)", p.dir, pid, time.Since(start).Round(time.Second), lock)
			said = time.Now()
		}
		time.Sleep(2 * time.Second)
	}
}
