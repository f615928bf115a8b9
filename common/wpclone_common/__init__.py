"""What the operator and the API share: the names (constants), the custom resources' models (resources)
and the Kubernetes adapter (kube). The API imports nothing of the operator's own."""
