"""How to run rayswap on a cluster: launcher YAML, KubeRay manifests, job submission."""
