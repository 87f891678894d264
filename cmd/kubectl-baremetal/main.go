// Command kubectl-baremetal is the `kubectl baremetal` plugin; see package
// overview.
package main

import (
	"os"

	"k8s.io/component-base/cli"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/overview"
)

func main() {
	os.Exit(cli.Run(overview.NewCommand()))
}
