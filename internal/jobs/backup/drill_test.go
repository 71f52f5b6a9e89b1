package backup

import (
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/plan"
)

func drilled() *desired.Project {
	return &desired.Project{Dir: "/srv/syncd/projects/shop", Compose: &types.Project{
		Name: "shop",
		Services: types.Services{
			"db": {Name: "db", Image: "postgres", ContainerName: "shop-db",
				Ports:        []types.ServicePortConfig{{Target: 5432, Published: "5432"}},
				Networks:     map[string]*types.ServiceNetworkConfig{"default": nil, "shared": nil},
				CustomLabels: types.Labels{plan.LabelManaged: "true", plan.LabelHost: "h1", plan.LabelOwner: "/var/lib/syncd", "x": "y"},
				Volumes: []types.ServiceVolumeConfig{
					{Type: types.VolumeTypeVolume, Source: "data", Target: "/var/lib/postgresql"},
					{Type: types.VolumeTypeBind, Source: "/srv/syncd/projects/shop/uploads", Target: "/uploads"},
					{Type: types.VolumeTypeBind, Source: "/srv/syncd/projects/shop/nginx.conf", Target: "/etc/nginx.conf", ReadOnly: true},
					{Type: types.VolumeTypeBind, Source: "/srv/shop/files", Target: "/files", ReadOnly: true},
					{Type: types.VolumeTypeBind, Source: "/etc/localtime", Target: "/etc/localtime", ReadOnly: true},
				}},
			"web": {Name: "web", Image: "nginx", NetworkMode: "host", Ipc: "container:shop-db-1", Pid: "host"},
		},
		Volumes:  types.Volumes{"data": {Name: "shop_data"}, "cache": {Name: "shared-cache", External: true}},
		Networks: types.Networks{"default": {Name: "shop_default"}, "shared": {Name: "proxy", External: true}},
	}}
}

// TestDrillProjectIsolated: the drill project publishes nothing, joins no
// network of the app's, mounts none of its volumes nor, writable, its
// directories, and carries none of syncd's labels; the app's own project
// is left as it was.
func TestDrillProjectIsolated(t *testing.T) {
	p := drilled()
	app := App{Name: "shop", Paths: []string{"/srv/shop/files"}}
	proj, binds, err := drillProject(p, app, "shop-drill-ab12cd", "/state/drills/shop")
	if err != nil {
		t.Fatal(err)
	}
	if proj.Name != "shop-drill-ab12cd" || p.Compose.Name != "shop" {
		t.Errorf("names: drill %s, app %s", proj.Name, p.Compose.Name)
	}
	for key, v := range proj.Volumes {
		if v.Name != "shop-drill-ab12cd_"+key || !v.External || v.Labels[LabelDrill] != "shop" {
			t.Errorf("volume %s = %+v, want the drill's own", key, v)
		}
	}
	if len(proj.Networks) != 1 || proj.Networks["default"].Name != "shop-drill-ab12cd_default" || proj.Networks["default"].Labels[LabelDrill] != "shop" {
		t.Errorf("networks = %+v, want the drill's default only", proj.Networks)
	}
	db, web := proj.Services["db"], proj.Services["web"]
	if len(db.Ports) != 0 || db.ContainerName != "" {
		t.Errorf("db keeps ports %v or container_name %q", db.Ports, db.ContainerName)
	}
	if len(db.Networks) != 1 || web.NetworkMode != "" || len(web.Networks) != 1 || web.Ipc != "" || web.Pid != "" {
		t.Errorf("namespaces: db %v, web network %q %v, ipc %q, pid %q", db.Networks, web.NetworkMode, web.Networks, web.Ipc, web.Pid)
	}
	for _, l := range []string{plan.LabelManaged, plan.LabelHost, plan.LabelOwner} {
		if _, ok := db.CustomLabels[l]; ok {
			t.Errorf("db keeps syncd's label %s", l)
		}
	}
	if db.CustomLabels[LabelDrill] != "shop" || db.CustomLabels["x"] != "y" {
		t.Errorf("db labels = %v", db.CustomLabels)
	}
	got := map[string]string{}
	for _, v := range db.Volumes {
		got[v.Target] = v.Source
	}
	want := map[string]string{
		"/var/lib/postgresql": "data", // the project's key: now the drill's volume
		"/uploads":            "/state/drills/shop/paths/srv/syncd/projects/shop/uploads",
		"/etc/nginx.conf":     "/srv/syncd/projects/shop/nginx.conf", // read-only: read as the app does
		"/files":              "/state/drills/shop/paths/srv/shop/files",
		"/etc/localtime":      "/etc/localtime",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("mount %s: source %q, want %q", k, got[k], v)
		}
	}
	if strings.Join(binds, ",") != "paths/srv/shop/files,paths/srv/syncd/projects/shop/uploads" {
		t.Errorf("bind places = %v", binds)
	}
	// The app's project is untouched.
	orig := p.Compose.Services["db"]
	if len(orig.Ports) != 1 || orig.Volumes[1].Source != "/srv/syncd/projects/shop/uploads" || orig.CustomLabels[plan.LabelManaged] != "true" || p.Compose.Volumes["data"].Name != "shop_data" {
		t.Errorf("drillProject changed the app's project: %+v", orig)
	}
}

// TestDrillProjectRefusesWritableHostPath: a writable bind outside the
// project directory and backup.paths, or the volumes of a container that
// is not the drill's, would let the drill write where the app keeps its
// data.
func TestDrillProjectRefusesWritableHostPath(t *testing.T) {
	p := drilled()
	db := p.Compose.Services["db"]
	db.Volumes = append(db.Volumes, types.ServiceVolumeConfig{Type: types.VolumeTypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"})
	db.VolumesFrom = []string{"container:shop-db-1"}
	p.Compose.Services["db"] = db
	_, _, err := drillProject(p, App{Name: "shop"}, "shop-drill-ab12cd", "/state/drills/shop")
	for _, want := range []string{"service db binds /var/run/docker.sock read-write", "service db takes volumes_from container:shop-db-1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

func TestDrillName(t *testing.T) {
	for run, want := range map[string]string{
		"20261208T011410Z-ea30e0": "shop-drill-ea30e0",
		"x/../Y Z":                "shop-drill-", // hashed: checked below
	} {
		got := DrillName("shop", run)
		if !strings.HasPrefix(got, want) || strings.Trim(strings.TrimPrefix(got, "shop-drill-"), "0123456789abcdef") != "" {
			t.Errorf("DrillName(%q) = %q", run, got)
		}
	}
}
