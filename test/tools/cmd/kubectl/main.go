// Command kubectl is the stock kubectl, built from the same pinned Kubernetes
// release as the apiserver so that client and server versions always match.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	os.Exit(cli.Run(command))
}
