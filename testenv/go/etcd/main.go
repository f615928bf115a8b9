// Command etcd is etcd's own server entry point, built from the Go module proxy:
// etcd's server module uses local replace directives, so `go install` of it fails.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
