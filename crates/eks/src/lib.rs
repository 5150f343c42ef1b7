//! EKS tier: cluster and node IAM roles, KMS key, cluster, Graviton node group, add-ons, kubeconfig and EKS token. Not implemented yet.
