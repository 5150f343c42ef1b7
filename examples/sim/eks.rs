//! The EKS tier's EKS, CloudWatch Logs, IAM, KMS and EC2 calls, in memory: the tier's own fake
//! (`dify_stack::eks::testing::FakeEks`), timed by the run's simulation. The cluster, node group
//! and add-ons are CREATING until their sampled durations have passed; a Deployment add-on is
//! not ACTIVE before the node group; a role is refused by EKS until its sampled IAM
//! propagation delay has passed.

pub(crate) use dify_stack::eks::testing::FakeEks;
