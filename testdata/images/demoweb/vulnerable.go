//go:build syncd_vulnerable

package main

// Built with -tags syncd_vulnerable (testenv.VulnerableDemoImage), the
// binary links a module whose version the scan tests' vulnerability DB
// lists: its build info is what trivy reads.
import units "github.com/docker/go-units"

var _ = units.HumanSize
