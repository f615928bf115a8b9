"""Pinned versions of every binary the local stack runs; the cache is keyed by them."""

KUBERNETES = "v1.34.4"
ETCD = "v3.6.16"
KWOK = "v0.7.0"
HELM = "v3.21.4"
