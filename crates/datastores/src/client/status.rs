//! The lifecycle statuses RDS and ElastiCache report, as enums: a wait matches on them instead
//! of comparing strings, and a status AWS adds later is kept as it was said ([`Other`]).
//!
//! [`Other`]: RdsStatus::Other

/// The status RDS reports for an Aurora cluster (`DBCluster.Status`) or a DB instance
/// (`DBInstance.DBInstanceStatus`): lowercase words joined by dashes (Aurora user guide,
/// "Viewing DB cluster status" and "Viewing DB instance status").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RdsStatus {
    /// `available`.
    Available,
    /// `creating`.
    Creating,
    /// `modifying`, `upgrading`, `rebooting`, `renaming`, `resetting-master-credentials`,
    /// `configuring-*`, `maintenance`: changing, and back to `available` by itself.
    Modifying(String),
    /// `backing-up`.
    BackingUp,
    /// `deleting`.
    Deleting,
    /// A state RDS does not leave by itself, each listed as such in the guide: `failed`,
    /// `inaccessible-encryption-credentials`, `incompatible-network`, `incompatible-option-group`,
    /// `incompatible-parameters`, `incompatible-restore`, `storage-full`, `restore-error`.
    Failed(String),
    /// Any other status, as RDS said it (`starting`, `stopped`, `stopping`, ...).
    Other(String),
    /// No status in the answer.
    #[default]
    Unknown,
}

impl RdsStatus {
    /// Parses RDS's spelling.
    pub fn parse(s: &str) -> RdsStatus {
        match s {
            "available" => RdsStatus::Available,
            "creating" => RdsStatus::Creating,
            "backing-up" => RdsStatus::BackingUp,
            "deleting" => RdsStatus::Deleting,
            "" => RdsStatus::Unknown,
            "failed" | "inaccessible-encryption-credentials" | "storage-full" | "restore-error" => {
                RdsStatus::Failed(s.to_owned())
            }
            s if s.starts_with("incompatible-") => RdsStatus::Failed(s.to_owned()),
            "modifying" | "upgrading" | "rebooting" | "renaming" | "resetting-master-credentials" | "maintenance" => {
                RdsStatus::Modifying(s.to_owned())
            }
            s if s.starts_with("configuring-") => RdsStatus::Modifying(s.to_owned()),
            other => RdsStatus::Other(other.to_owned()),
        }
    }

    /// RDS's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            RdsStatus::Available => "available",
            RdsStatus::Creating => "creating",
            RdsStatus::BackingUp => "backing-up",
            RdsStatus::Deleting => "deleting",
            RdsStatus::Modifying(s) | RdsStatus::Failed(s) | RdsStatus::Other(s) => s,
            RdsStatus::Unknown => "",
        }
    }

    /// A state that does not end by itself (a wait for `available` fails at once).
    pub fn is_failed(&self) -> bool {
        matches!(self, RdsStatus::Failed(_))
    }
}

/// The status ElastiCache reports for a replication group (`ReplicationGroup.Status`:
/// `creating`, `available`, `modifying`, `deleting`, `create-failed`, `snapshotting`; ElastiCache
/// API reference, "ReplicationGroup").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CacheStatus {
    /// `available`: the only state in which the group's tags can be read or written.
    Available,
    /// `creating`.
    Creating,
    /// `modifying`.
    Modifying,
    /// `snapshotting`.
    Snapshotting,
    /// `deleting`.
    Deleting,
    /// `create-failed`: does not end by itself.
    CreateFailed,
    /// Any other status, as ElastiCache said it.
    Other(String),
    /// No status in the answer.
    #[default]
    Unknown,
}

impl CacheStatus {
    /// Parses ElastiCache's spelling.
    pub fn parse(s: &str) -> CacheStatus {
        match s {
            "available" => CacheStatus::Available,
            "creating" => CacheStatus::Creating,
            "modifying" => CacheStatus::Modifying,
            "snapshotting" => CacheStatus::Snapshotting,
            "deleting" => CacheStatus::Deleting,
            "create-failed" => CacheStatus::CreateFailed,
            "" => CacheStatus::Unknown,
            other => CacheStatus::Other(other.to_owned()),
        }
    }

    /// ElastiCache's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            CacheStatus::Available => "available",
            CacheStatus::Creating => "creating",
            CacheStatus::Modifying => "modifying",
            CacheStatus::Snapshotting => "snapshotting",
            CacheStatus::Deleting => "deleting",
            CacheStatus::CreateFailed => "create-failed",
            CacheStatus::Other(s) => s,
            CacheStatus::Unknown => "",
        }
    }
}

macro_rules! spelled {
    ($($t:ty),*) => {$(
        impl From<&str> for $t {
            fn from(s: &str) -> $t {
                <$t>::parse(s)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
spelled!(RdsStatus, CacheStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rds_statuses_round_trip_and_classify() {
        for s in ["available", "creating", "backing-up", "deleting", "modifying", "configuring-log-exports", "starting"]
        {
            assert_eq!(RdsStatus::parse(s).as_str(), s);
            assert!(!RdsStatus::parse(s).is_failed(), "{s}");
        }
        for s in ["failed", "incompatible-network", "incompatible-parameters", "inaccessible-encryption-credentials"] {
            assert_eq!(RdsStatus::parse(s).as_str(), s);
            assert!(RdsStatus::parse(s).is_failed(), "{s}");
        }
        assert_eq!(RdsStatus::parse(""), RdsStatus::Unknown);
        assert_eq!(RdsStatus::parse("starting"), RdsStatus::Other("starting".into()));
    }

    #[test]
    fn cache_statuses_round_trip() {
        for s in ["available", "creating", "modifying", "snapshotting", "deleting", "create-failed", "new-thing"] {
            assert_eq!(CacheStatus::parse(s).to_string(), s);
        }
        assert_eq!(CacheStatus::parse("create-failed"), CacheStatus::CreateFailed);
        assert_eq!(CacheStatus::parse("new-thing"), CacheStatus::Other("new-thing".into()));
    }
}
