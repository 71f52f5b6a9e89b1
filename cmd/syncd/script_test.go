package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// update rewrites golden files (testdata/render/*.golden) and the cmp
// sections of scripts: go test ./cmd/syncd -run Golden -update
var update = boolFlag("update", "rewrite golden files instead of comparing with them")

// boolFlag defines a boolean test flag, or shares it when a dependency
// linked into the test binary already did (gotest.tools, through the Docker
// libraries, registers -update), which would otherwise panic.
func boolFlag(name, usage string) func() bool {
	if flag.Lookup(name) == nil {
		flag.Bool(name, false, usage)
	}
	return func() bool {
		v, _ := flag.Lookup(name).Value.(flag.Getter).Get().(bool)
		return v
	}
}

// TestMain makes the test binary double as `syncd` for the scripts: a
// script's `syncd ...` (and a Git hook's) runs run() in a process of its
// own, with the exit code run returns. Only one TestMain may exist in this
// package; add commands here rather than another one.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"syncd": func() { os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/script/*.txtar. Besides testscript's own
// commands, scripts have:
//
//	exits N cmd args...     run cmd; its exit code must be N (0 included)
//	agekey FILE VAR         write a new age identity to FILE (0600), its recipient to $VAR
//	encrypt RECIPIENT FILE  encrypt FILE in place with sops (format from its name)
//	edit FILE REGEXP REPL   replace every match of REGEXP in FILE; it must match
//	noleak VALUE FILE...    neither VALUE nor any 8 bytes of it are in the files
//	                        (stdout and stderr name the last command's output)
//	forge VAR [N]           a loopback forge comment API (see cmdForge), URL in $VAR
//
// The environment has $REPO_LAYOUT (the example repository), $AGE_DIR (its
// demo keys, which need a chmod 600 copy before use) and $HOOKS_DIR; the
// condition [strict] is SYNCD_TEST_STRICT=1, for a script to fail rather
// than skip when a tool is missing.
func TestScripts(t *testing.T) {
	repoLayout, ageDir := exampleDirs(t)
	testscript.Run(t, testscript.Params{
		Dir:           filepath.Join("testdata", "script"),
		UpdateScripts: update(),
		Setup: func(env *testscript.Env) error {
			env.Setenv("REPO_LAYOUT", repoLayout)
			env.Setenv("AGE_DIR", ageDir)
			// Git, for the hook scripts, with nothing of the developer's.
			env.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(env.WorkDir, ".gitconfig"))
			env.Setenv("GIT_CONFIG_NOSYSTEM", "1")
			env.Setenv("GIT_AUTHOR_NAME", "syncd test")
			env.Setenv("GIT_AUTHOR_EMAIL", "test@example.org")
			env.Setenv("GIT_COMMITTER_NAME", "syncd test")
			env.Setenv("GIT_COMMITTER_EMAIL", "test@example.org")
			if p, err := filepath.Abs(filepath.Join("..", "..", "hooks")); err == nil {
				env.Setenv("HOOKS_DIR", p)
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":   cmdExits,
			"agekey":  cmdAgeKey,
			"encrypt": cmdEncrypt,
			"edit":    cmdEdit,
			"noleak":  cmdNoLeak,
			"forge":   cmdForge,
			"envfile": cmdEnvFile,
		},
		Condition: func(cond string) (bool, error) {
			if cond == "strict" {
				return testenv.Strict(), nil
			}
			return false, errors.New("unknown condition " + cond)
		},
	})
}

// exampleDirs returns the absolute paths of repo-layout/ and testdata/age/.
func exampleDirs(t *testing.T) (string, string) {
	t.Helper()
	repo, err := filepath.Abs(filepath.Join("..", "..", "repo-layout"))
	if err != nil {
		t.Fatal(err)
	}
	age, err := filepath.Abs(filepath.Join("..", "..", "testdata", "age"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{repo, age} {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("the example fleet: %v", err)
		}
	}
	return repo, age
}

func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %q is not an exit code", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

func cmdAgeKey(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: agekey FILE VAR")
	}
	content, recipient, err := secretstest.GenerateKey()
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), content, 0o600))
	ts.Setenv(args[1], recipient)
}

func cmdEncrypt(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: encrypt RECIPIENT FILE")
	}
	file := ts.MkAbs(args[1])
	plain, err := os.ReadFile(file)
	ts.Check(err)
	enc, err := secretstest.Encrypt(args[0], secretstest.FormatOf(file), plain)
	ts.Check(err)
	ts.Check(os.WriteFile(file, enc, 0o644))
}

func cmdEdit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: edit FILE REGEXP REPLACEMENT")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	file := ts.MkAbs(args[0])
	data, err := os.ReadFile(file)
	ts.Check(err)
	if !re.Match(data) {
		ts.Fatalf("edit: %s does not match %s", args[0], args[1])
	}
	ts.Check(os.WriteFile(file, re.ReplaceAll(data, []byte(args[2])), 0o644))
}

func cmdNoLeak(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: noleak VALUE FILE...")
	}
	for _, f := range args[1:] {
		if leak := secretstest.LeakIn(ts.ReadFile(f), args[0]); leak != "" {
			ts.Fatalf("%s holds %s", f, leak)
		}
	}
}

// cmdEnvFile sets an environment variable to a file's content, trimmed:
// `exec git rev-parse HEAD; cp stdout sha; envfile SHA sha`, so a later
// command can name $SHA.
func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile NAME FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}
