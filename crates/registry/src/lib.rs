//! Registry tier: ECR repositories and lifecycle policies. Not implemented yet.
