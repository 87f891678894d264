// Command baremetal-cloud-controller-manager is the Kubernetes
// cloud-controller-manager for bare-metal clusters.
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics on /metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // build info on /metrics

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/provider/app"
)

func main() {
	cmd, err := app.NewCommand()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(cli.Run(cmd))
}
