package plan

// Labels syncd puts on every container it creates, beside Compose's own.
// They are Compose "custom labels": Compose leaves them out of its config
// hash, so a new commit alone never recreates a container.
const (
	LabelManaged = "dev.syncd.managed" // "true"
	LabelHost    = "dev.syncd.host"    // the host name it was created for
	LabelCommit  = "dev.syncd.commit"  // the commit it was created from
	LabelSecrets = "dev.syncd.secrets" // a keyed hash of the secret values the service uses
	LabelOwner   = "dev.syncd.state"   // the state directory of the syncd that created it
)

// Container is one container of a Compose project as the engine reports it.
type Container struct {
	ID      string
	Name    string
	Service string
	// ConfigHash is Compose's com.docker.compose.config-hash label.
	ConfigHash  string
	SecretsHash string
	Commit      string
	// Image is the reference the container was created from; ImageID the
	// image it runs (sha256:…).
	Image   string
	ImageID string
	State   string // created, running, restarting, exited, paused, dead, removing
	Health  string // "", starting, healthy, unhealthy
	// Owner is the state directory of the syncd that created it ("" for
	// containers of a syncd before the label).
	Owner string
}

// ObservedProject is what runs under one Compose project name.
type ObservedProject struct {
	Name string
	// Owned is true when every container carries syncd's managed label
	// for this host: only such projects are ever changed or removed.
	Owned      bool
	Containers []Container
}

// Observed is the engine's side of a plan.
type Observed struct {
	Projects map[string]*ObservedProject
	// Images maps an image reference present on the engine to the ID it
	// points to now, so a tag moved to another image is seen.
	Images map[string]string
	// Digests maps an image ID to its repository digest, for the images
	// that came from a registry (a locally built image has none).
	Digests map[string]string
}
