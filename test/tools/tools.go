//go:build tools

// Package tools only exists to record, for go mod tidy, the commands that
// build.sh compiles straight from k8s.io/kubernetes. Without these blank
// imports tidy would drop the packages they need from go.sum.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
