//! IAM tier: OIDC provider, IRSA roles and Kubernetes service accounts. Not implemented yet.
