// Command baremetal-announcer makes LoadBalancer IPs reachable from the
// node it runs on; see package announcer/app.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"         // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/version" // build info on /metrics

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/app"
)

func main() {
	os.Exit(cli.Run(app.NewCommand()))
}
