// Command demo is `make demo`: the MetalLB layer-2 walkthrough, end to end,
// on this machine, with cloud-provider-baremetal. See package demo.
//
// Run it as root from the repository, after `make build tools` (the
// Makefile target does both). Ctrl-C stops it and tears everything down; a
// second Ctrl-C exits at once, and the lab's watchdog and the children's
// parent-death signal still remove the namespaces and processes.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/demo"
)

func main() {
	dir := flag.String("dir", "", "directory for the demo's files and logs (default _output/demo in the repository; emptied first)")
	hold := flag.Bool("hold", false, "after the last step, keep everything running until Ctrl-C, to look around")
	flag.Parse()

	if *dir == "" {
		root, err := controlplane.RepoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			os.Exit(2)
		}
		*dir = filepath.Join(root, "_output", "demo")
	}
	// Logs of the previous run go; this run's stay for reading afterwards.
	if err := os.RemoveAll(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// From now on a second Ctrl-C kills us at once.
		stop()
	}()

	opts := demo.Options{Dir: *dir, LabPrefix: "demo"}
	if *hold {
		opts.Hold = func(h demo.HoldInfo) {
			fmt.Printf(`==> Holding; press Ctrl-C to tear down. In another shell, as root:
    export KUBECONFIG=%s
    %s get service
    ip netns exec %s curl http://%s/
    (namespaces: %s)
`, h.Kubeconfig, h.Kubectl, h.Client, h.ExternalIP, strings.Join(h.Namespaces, " "))
			<-ctx.Done()
		}
	}
	if _, err := demo.Run(ctx, os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
