// Package testdata holds the MetalLB walkthrough's manifests
// (shared/seed/metallb-walkthrough.txt) verbatim, so that every test that
// replays the walkthrough reads the same bytes: config's tests read the
// files, test/integration and test/demo import this package, which
// embeds them (go:embed cannot reach a parent directory).
package testdata

import _ "embed"

// WalkthroughConfig is the walkthrough's address pool as a cloud-config
// block, with its comment in Chinese ("keep it in the subnet of the
// cluster's hosts").
//
//go:embed metallb-walkthrough-config.yaml
var WalkthroughConfig string

// WalkthroughConfigMap is the whole MetalLB ConfigMap the walkthrough
// applies, which the cloud-config accepts as it is.
//
//go:embed metallb-walkthrough-configmap.yaml
var WalkthroughConfigMap string

// WalkthroughService is the walkthrough's nginx Service (tutorial-2.yaml
// without its Deployment).
//
//go:embed metallb-walkthrough-service.yaml
var WalkthroughService string
