"""Pinned versions of every binary the local stack runs; the cache is keyed by them."""

KUBERNETES = "v1.34.4"
ETCD = "v3.6.16"
HELM = "v3.21.4"
COREDNS = "v1.15.0"
KUBE_ROUTER = "v2.1.0"
