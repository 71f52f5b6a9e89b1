package jobs

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestIDsNeverCollide: the backup of an app named like a host-wide job
// (check, scan) or like anything else is its own job, and every ID comes
// back from its String form.
func TestIDsNeverCollide(t *testing.T) {
	ids := []ID{Check, Scan}
	for _, app := range []string{"check", "prune", "all", "scan", "backup", "web"} {
		ids = append(ids, Backup(app), Drill(app))
	}
	seen := map[string]ID{}
	for _, id := range ids {
		s := id.String()
		if other, ok := seen[s]; ok {
			t.Errorf("%+v and %+v are both %q", id, other, s)
		}
		seen[s] = id
		back, err := ParseID(s)
		if err != nil || back != id {
			t.Errorf("ParseID(%q) = %+v, %v; want %+v", s, back, err, id)
		}
	}
	if Backup("check").String() != "backup/check" || Check.String() != "check" || Drill("web").String() != "drill/web" {
		t.Errorf("forms: %s, %s, %s", Backup("check"), Check, Drill("web"))
	}
}

func TestParseIDRefuses(t *testing.T) {
	for _, s := range []string{"", "backup", "backup/", "check/web", "scan/x", "drill", "drill/", "backup check", "backup/a/b", "backup/a\x00", "nope"} {
		if id, err := ParseID(s); err == nil {
			t.Errorf("ParseID(%q) = %+v, want an error", s, id)
		}
	}
}

func TestIDAsJSONKey(t *testing.T) {
	in := map[ID]int{Backup("check"): 1, Check: 2}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"backup/check":1,"check":2}` {
		t.Errorf("JSON = %s", b)
	}
	var out map[ID]int
	if err := json.Unmarshal(b, &out); err != nil || len(out) != 2 || out[Backup("check")] != 1 || out[Check] != 2 {
		t.Errorf("back: %v %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"check/x":1}`), &out); err == nil {
		t.Error("a malformed ID was read")
	}
}

func TestRequestValidate(t *testing.T) {
	good := []Request{
		{Kind: RequestBackup},
		{Kind: RequestBackup, App: "check"},
		{Kind: RequestList, App: "all"},
		{Kind: RequestRestore, App: "prune", Snapshot: "latest", To: "/tmp/drill"},
		{Kind: RequestList, FromHost: "web-1"},
		{Kind: RequestRestore, App: "web", FromHost: "web-1"},
		{Kind: RequestList, App: "web", Run: "latest"},
		{Kind: RequestRestore, App: "web", To: "/tmp/x", Paths: []string{"volumes/data/conf"}},
		{Kind: RequestDrill, App: "web"},
		{Kind: RequestDrill, App: "web", Snapshot: "latest"},
	}
	for _, r := range good {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := map[string]Request{
		`unknown request kind "drop"`:                     {Kind: "drop", App: "web"},
		`unknown request kind ""`:                         {},
		"app: is empty":                                   {Kind: RequestRestore},
		"app: \"a/b\" holds a /":                          {Kind: RequestList, App: "a/b"},
		"not an absolute directory":                       {Kind: RequestRestore, App: "web", To: "rel"},
		"go with a restore":                               {Kind: RequestBackup, Snapshot: "x"},
		"from_host goes with a list":                      {Kind: RequestBackup, FromHost: "web-1"},
		"from_host: \"../h\" holds a /":                   {Kind: RequestList, FromHost: "../h"},
		"snapshot: \"a\\x1b[2J\" holds":                   {Kind: RequestRestore, App: "web", Snapshot: "a\x1b[2J"},
		"run goes with a list of one app":                 {Kind: RequestList, Run: "r1"},
		"paths go with a restore into":                    {Kind: RequestRestore, App: "web", Paths: []string{"volumes/data"}},
		"paths: \"a\\x1b[2J\" holds":                      {Kind: RequestRestore, App: "web", To: "/tmp/x", Paths: []string{"a\x1b[2J"}},
		"job request: app: is empty":                      {Kind: RequestDrill},
		"to and from_host go with a restore, not a drill": {Kind: RequestDrill, App: "web", To: "/tmp/x"},
		"not a drill: a drill restores this host's":       {Kind: RequestDrill, App: "web", FromHost: "web-1"},
		"paths go with a restore into a directory":        {Kind: RequestDrill, App: "web", Paths: []string{"volumes/data"}},
	}
	for want, r := range bad {
		if err := r.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", r, err, want)
		}
	}
}
