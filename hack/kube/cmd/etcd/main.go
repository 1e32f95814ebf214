// etcd, built from the go.etcd.io/etcd/server/v3 module at the version kube-apiserver
// itself depends on, for kubenas' real-API-server test tier.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
