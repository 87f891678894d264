// Package demo is `make demo`: the classic MetalLB layer-2 walkthrough
// (the ConfigMap pool, an nginx Service of type LoadBalancer), end to end, on one machine, with
// our cloud-controller-manager and announcer instead of MetalLB.
//
// Run starts a real etcd and kube-apiserver (package controlplane), builds
// a network-namespace lab (package lab: a switch, a router running FRR,
// node1..node3 and an outside client), registers the nodes as kubeadm's
// kubelets would (uninitialized taint, provided-node-ip annotation), runs
// our CCM binary under deploy/base's RBAC and our announcer binary in each
// node's namespace, and then walks through what a user of the walkthrough
// does and sees: the pool config, the nginx Service, `kubectl get nodes`
// and `kubectl get service`, curl of the EXTERNAL-IP from outside over
// layer 2, the same through a bgp pool behind the router, and a failover
// when the announcing node's announcer dies. It tears everything down at
// the end, on failure and on cancellation (Ctrl-C in the command).
//
// There are no kubelets, pods or kube-proxy: the demo writes the Node
// objects itself, and each node namespace runs a tiny web server that
// answers with the node's name on the Service IPs it holds on lo (what
// kube-proxy and the nginx pod do on a real node), so every curl shows
// which node it reached.
//
// The command is test/demo/cmd/demo; TestDemo runs the same Run in
// `make test`, so the demo keeps working.
package demo
