// Command etcd is the stock etcd server, built from the Go module proxy so
// that the integration tests need no downloaded release tarball.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
