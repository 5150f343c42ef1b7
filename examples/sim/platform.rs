//! The platform tier's EKS add-on, ACM and Route 53 calls, Helm and the IngressClass, in memory:
//! the tier's own fake (`dify_stack::platform::testing`), timed by the benchmark's simulation.
//!
//! `helm upgrade --install` (without `--wait`: the tier does not wait for the rollout) takes one
//! `helm_release` duration; a certificate is PENDING_VALIDATION until its sampled
//! `acm_validation` duration after the request has passed. Neither figure is in
//! `aws-durations.toml`: both are assumptions, listed as such in the benchmark's table.

pub(crate) use dify_stack::platform::testing::FakePlatform;
