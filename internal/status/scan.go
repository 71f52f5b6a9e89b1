package status

// ImageScan is what the last scan of one image a project runs found
// (Project.Scan): its findings by severity, the finding IDs its project's
// policy refuses, and the date of the vulnerability DB it was scanned
// with.
type ImageScan struct {
	Ref string `yaml:"ref" json:"ref"`
	ID  string `yaml:"id" json:"id"`
	// Counts maps a severity (CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN) to its
	// number of findings, before the policy.
	Counts map[string]int `yaml:"counts,omitempty" json:"counts,omitempty"`
	// Refused lists the finding IDs at or above the policy's
	// refuse_severity that no ignore entry accepts.
	Refused []string `yaml:"refused,omitempty" json:"refused,omitempty"`
	// DB is the day the vulnerability DB was built (YYYY-MM-DD).
	DB string `yaml:"db,omitempty" json:"db,omitempty"`
}
