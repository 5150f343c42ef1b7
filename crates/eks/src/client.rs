//! The thin client of the EKS tier: one small mockable trait per AWS service it calls (EKS,
//! CloudWatch Logs, IAM, KMS, EC2; `MockClusterApi` and the others in tests), each in its own
//! file with the types it takes and returns. The real implementation is [`SdkEks`](crate::SdkEks).

mod cluster;
mod ec2;
mod keys;
mod logs;
mod roles;

pub use cluster::*;
pub use ec2::*;
pub use keys::*;
pub use logs::*;
pub use roles::*;

/// The status EKS reports for a cluster, a node group or an add-on (the three share one
/// vocabulary; EKS API reference, `Cluster.status`, `Nodegroup.status`, `Addon.status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Status {
    /// `CREATING`.
    Creating,
    /// `ACTIVE`.
    Active,
    /// `UPDATING`.
    Updating,
    /// `DELETING`.
    Deleting,
    /// `PENDING` (a cluster waiting for capacity).
    Pending,
    /// `FAILED` (a cluster).
    Failed,
    /// `CREATE_FAILED`.
    CreateFailed,
    /// `UPDATE_FAILED`.
    UpdateFailed,
    /// `DELETE_FAILED`.
    DeleteFailed,
    /// `DEGRADED`.
    Degraded,
    /// Anything else EKS may add, as it said it.
    Other(String),
    /// No status in the answer.
    #[default]
    Unknown,
}

impl Status {
    /// Parses EKS's spelling.
    pub fn parse(s: &str) -> Status {
        match s {
            "CREATING" => Status::Creating,
            "ACTIVE" => Status::Active,
            "UPDATING" => Status::Updating,
            "DELETING" => Status::Deleting,
            "PENDING" => Status::Pending,
            "FAILED" => Status::Failed,
            "CREATE_FAILED" => Status::CreateFailed,
            "UPDATE_FAILED" => Status::UpdateFailed,
            "DELETE_FAILED" => Status::DeleteFailed,
            "DEGRADED" => Status::Degraded,
            "" => Status::Unknown,
            other => Status::Other(other.to_owned()),
        }
    }

    /// EKS's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Creating => "CREATING",
            Status::Active => "ACTIVE",
            Status::Updating => "UPDATING",
            Status::Deleting => "DELETING",
            Status::Pending => "PENDING",
            Status::Failed => "FAILED",
            Status::CreateFailed => "CREATE_FAILED",
            Status::UpdateFailed => "UPDATE_FAILED",
            Status::DeleteFailed => "DELETE_FAILED",
            Status::Degraded => "DEGRADED",
            Status::Other(s) => s,
            Status::Unknown => "",
        }
    }
}

impl From<&str> for Status {
    fn from(s: &str) -> Status {
        Status::parse(s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the EKS tier asks of AWS: one trait per service, implemented together by
/// [`SdkEks`](crate::SdkEks) (tests implement them on a fake).
pub trait EksApi: ClusterApi + LogsApi + RolesApi + KeysApi + Ec2Api {}

impl<T: ClusterApi + LogsApi + RolesApi + KeysApi + Ec2Api> EksApi for T {}
