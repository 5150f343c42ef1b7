//! The EKS tier's typed change ([`EksChange`], opaque around [`Step`]) and how the plan shows
//! it ([`Planned`]); `diff.rs` computes the list, `apply.rs` executes it.

use super::{
    Action, CLUSTER_ADMIN_POLICY, Change, Effect, Insight, NODE_METADATA_HOP_LIMIT, Planned, ResourceRef, list, upgrade,
};

/// A value as it is and as it should be.
pub(crate) type HaveWant = (String, String);

/// Tags of ours missing or different on a resource: (key, before, after).
pub(crate) type Drift = dify_stack_core::TagDrift;

/// A node group's scaling: (min, max, desired).
pub(crate) type Scaling = (i32, i32, i32);

/// The scaling of a node group as the plan shows it.
pub(super) fn scaling((min, max, desired): Scaling) -> String {
    format!("min {min} desired {desired} max {max}")
}

/// Why each cluster update is its own line: EKS takes one type of update per UpdateClusterConfig
/// call and refuses another while one is in progress, so apply makes them one at a time.
const ONE_UPDATE: &str = "one cluster update at a time, each waited for";

/// One change of the EKS tier, as [`Provisioner::changes`](dify_stack_core::Provisioner::changes)
/// computes it and [`Provisioner::execute`](dify_stack_core::Provisioner::execute) carries it
/// out. Opaque: what a plan shows of it is its [`Planned::change`].
#[derive(Debug, Clone)]
pub struct EksChange(pub(crate) Step);

impl Planned for EksChange {
    fn change(&self) -> Change {
        self.0.change()
    }
}

/// One change of the EKS tier, in the order apply makes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// A role of [`role_wants`] (by its index there) is created with its managed policies.
    CreateRole {
        index: usize,
        name: String,
        policies: Vec<String>,
    },
    /// Its trust policy rewritten, missing managed policies attached, our tags.
    UpdateRole {
        index: usize,
        name: String,
        arn: String,
        trust: Option<(String, String)>,
        policies: Option<(Vec<String>, Vec<String>)>,
        tags: Drift,
    },
    /// The control-plane log group, made before the cluster so EKS writes into ours.
    CreateLogGroup {
        name: String,
        retention_days: i32,
    },
    LogRetention {
        name: String,
        have: Option<i32>,
        want: i32,
    },
    /// A control-plane log group without any stack's tag (EKS made it: a log flush after a
    /// destroy, or an older cluster of the name) is adopted: our tags, the retention.
    AdoptLogGroup {
        name: String,
        have: Option<i32>,
        want: i32,
        tags: Drift,
    },
    /// The secrets key (a key left without its alias by a crash is aliased instead).
    CreateKey {
        alias: String,
    },
    /// A key left without its alias by a run that stopped between CreateKey and CreateAlias gets
    /// it (instead of a second key).
    AliasKey {
        alias: String,
        key_id: String,
    },
    /// A key scheduled for deletion or disabled is restored; our tags.
    UpdateKey {
        alias: String,
        arn: String,
        key_id: String,
        restore: Option<String>,
        tags: Drift,
    },
    CreateNodeSecurityGroup {
        name: String,
    },
    CreateCluster {
        name: String,
        version: String,
        subnets: String,
        cidrs: String,
        logs: String,
    },
    /// One control-plane minor of an upgrade (`step` of the upgrade's control-plane steps),
    /// stopped by a blocking upgrade insight; or a refused downgrade.
    UpgradeCluster {
        name: String,
        arn: String,
        have: String,
        want: String,
        refused: bool,
        step: (usize, usize),
        blocked: Option<Insight>,
    },
    /// An add-on moved to EKS's default for the minor the control plane just reached.
    UpgradeAddon {
        name: String,
        have: String,
        want: String,
        minor: String,
    },
    /// The node group rolled onto the control plane's minor before its next one.
    UpgradeNodegroup {
        name: String,
        arn: String,
        have: String,
        want: String,
        nodes: i32,
    },
    /// The secrets key cannot change (refused).
    ReplaceClusterKey {
        name: String,
        arn: String,
        have: String,
        want: String,
    },
    /// The control-plane subnets (a VpcConfigUpdate: EKS takes one type of update per call).
    UpdateClusterSubnets {
        name: String,
        arn: String,
        have: String,
        want: String,
    },
    /// The endpoint access: private on, public on and limited to the configured and the
    /// operators' CIDRs, or off (an EndpointAccessUpdate).
    UpdateClusterAccess {
        name: String,
        arn: String,
        /// The public endpoint's CIDRs (`(off)` when it is off), as (have, want).
        cidrs: Option<HaveWant>,
        /// The private endpoint was off.
        private_off: bool,
    },
    /// The control-plane log types (a LoggingUpdate).
    UpdateClusterLogging {
        name: String,
        arn: String,
        have: String,
        want: String,
    },
    /// The upgrade policy (`upgradePolicy.supportType`, an UpgradePolicyUpdate).
    UpdateClusterSupport {
        name: String,
        arn: String,
        have: String,
        want: String,
    },
    /// Our tags on the cluster (TagResource, not a cluster update).
    TagCluster {
        name: String,
        arn: String,
        tags: Drift,
    },
    CreateAccessEntry {
        principal: String,
    },
    AssociateAccessPolicy {
        principal: String,
    },
    CreateLaunchTemplate {
        name: String,
        disk_size_gib: i32,
    },
    /// A new template version (it rolls the nodes).
    UpdateLaunchTemplate {
        name: String,
        id: String,
        have: String,
        want: String,
    },
    CreateNodegroup {
        name: String,
        ami_type: String,
        instance_types: String,
        scaling: String,
        labels: String,
    },
    /// Instance types and AMI type cannot change in place (refused).
    ReplaceNodegroup {
        name: String,
        arn: String,
        instance_types: Option<(String, String)>,
        ami_type: Option<(String, String)>,
    },
    /// Scaling and labels (UpdateNodegroupConfig); the launch template's new version
    /// (UpdateNodegroupVersion). The Kubernetes version moves in the upgrade's steps.
    UpdateNodegroup {
        name: String,
        arn: String,
        scaling: Option<(Scaling, Scaling)>,
        labels: Option<(String, String)>,
        launch_template: Option<(String, String)>,
    },
    /// An add-on at the version EKS offers for the cluster version (`None`: resolved by apply).
    CreateAddon {
        name: String,
        version: Option<String>,
        pod_identity: Option<String>,
    },
    UpdateAddon {
        name: String,
        version: Option<(String, String)>,
        pod_identity: Option<String>,
    },
    /// An add-on this tier installed that the spec no longer lists.
    DeleteAddon {
        name: String,
        version: String,
    },
}

impl Planned for Step {
    fn change(&self) -> Change {
        match self {
            Step::CreateRole { name, policies, .. } => Change::new(Action::Create, ResourceRef::new("iam:role", name))
                .field("managed_policies", None::<String>, Some(list(policies))),
            Step::UpdateRole { name, arn, trust, policies, tags, .. } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("iam:role", name).with_id(arn));
                if let Some((have, want)) = trust {
                    c = c.field("assume_role_policy", Some(have), Some(want));
                }
                if let Some((have, want)) = policies {
                    c = c.field("managed_policies", Some(list(have)), Some(list(want)));
                }
                c.tag_fields(tags)
            }
            Step::CreateLogGroup { name, retention_days } => Change::new(
                Action::Create,
                ResourceRef::new("logs:log-group", name),
            )
            .field("retention_days", None::<i32>, Some(retention_days)),
            Step::LogRetention { name, have, want } => Change::new(
                Action::Update,
                ResourceRef::new("logs:log-group", name),
            )
            .field("retention_days", *have, Some(want)),
            Step::AdoptLogGroup { name, have, want, tags } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("logs:log-group", name))
                    .because("made by EKS without tags (a log flush after a destroy): adopted");
                if *have != Some(*want) {
                    c = c.field("retention_days", *have, Some(want));
                }
                c.tag_fields(tags)
            }
            Step::CreateKey { alias } => Change::new(
                Action::Create,
                ResourceRef::new("kms:key", format!("alias/{alias}")),
            )
            .field("rotation", None::<bool>, Some(true)),
            Step::AliasKey { alias, key_id } => {
                Change::new(Action::Update, ResourceRef::new("kms:key", format!("alias/{alias}")).with_id(key_id))
                    .field("alias", None::<&str>, Some(format!("alias/{alias}")))
                    .because("a run stopped between CreateKey and CreateAlias")
            }
            Step::UpdateKey { alias, arn, restore, tags, .. } => {
                let mut c =
                    Change::new(Action::Update, ResourceRef::new("kms:key", format!("alias/{alias}")).with_id(arn));
                if let Some(state) = restore {
                    c = c
                        .field("state", Some(state), Some("Enabled"))
                        .because("a key scheduled for deletion is restored");
                }
                c.tag_fields(tags)
            }
            Step::CreateNodeSecurityGroup { name } => {
                Change::new(Action::Create, ResourceRef::new("ec2:security-group", name))
            }
            Step::CreateCluster { name, version, subnets, cidrs, logs } => {
                Change::new(Action::Create, ResourceRef::new("eks:cluster", name))
                    .field("version", None::<&str>, Some(version))
                    .field("subnets", None::<String>, Some(subnets))
                    .field("endpoint_public_access_cidrs", None::<String>, Some(cidrs))
                    .field("logging", None::<String>, Some(logs))
                    .field("authentication_mode", None::<&str>, Some("API_AND_CONFIG_MAP"))
            }
            Step::UpgradeCluster { name, arn, have, want, refused, step: (i, n), blocked } => {
                let c = Change::new(Action::Update, ResourceRef::new("eks:cluster", name).with_id(arn)).field(
                    "version",
                    Some(have),
                    Some(want),
                );
                match (refused, blocked) {
                    (true, _) => c.because("downgrades are refused"),
                    (false, Some(i)) => c
                        .because(format!(
                            "BLOCKED by the upgrade insight {:?} ({}): {}; apply refuses until it passes",
                            i.name, i.status, i.reason
                        ))
                        .effect(Effect::Upgrade),
                    (false, None) => c
                        .because(format!(
                            "upgrade step {i} of {n}: the control plane one minor at a time, then its add-ons and nodes"
                        ))
                        .effect(Effect::Upgrade)
                        .typically(upgrade::typical::CONTROL_PLANE),
                }
            }
            Step::UpgradeAddon { name, have, want, minor } => {
                Change::new(Action::Update, ResourceRef::new("eks:addon", name))
                    .field("version", Some(have), Some(want))
                    .because(format!("EKS's default for Kubernetes {minor}, after the control plane"))
                    .effect(Effect::Upgrade)
                    .typically(upgrade::typical::ADDON)
            }
            Step::UpgradeNodegroup { name, arn, have, want, nodes } => {
                let mut r = ResourceRef::new("eks:nodegroup", name);
                if !arn.is_empty() {
                    r = r.with_id(arn);
                }
                Change::new(Action::Update, r)
                    .field("version", Some(have), Some(want))
                    .because("nodes at the control plane's minor before its next one; one node at a time")
                    .effect(Effect::Rolling)
                    .typically(upgrade::typical::nodegroup(*nodes))
            }
            Step::ReplaceClusterKey { name, arn, have, want } => {
                Change::new(Action::Replace, ResourceRef::new("eks:cluster", name).with_id(arn))
                    .field("secrets encryption key", Some(have), Some(want))
                    .because("a cluster's secrets encryption key cannot change")
            }
            Step::UpdateClusterSubnets { name, arn, have, want } => {
                Change::new(Action::Update, ResourceRef::new("eks:cluster", name).with_id(arn))
                    .field("subnets", Some(have), Some(want))
                    .because(ONE_UPDATE)
            }
            Step::UpdateClusterAccess { name, arn, cidrs, private_off } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("eks:cluster", name).with_id(arn));
                if *private_off {
                    c = c.field("endpoint_private_access", Some(false), Some(true));
                }
                if let Some((have, want)) = cidrs {
                    c = c.field("endpoint_public_access_cidrs", Some(have), Some(want));
                }
                c.because(ONE_UPDATE)
            }
            Step::UpdateClusterLogging { name, arn, have, want } => {
                Change::new(Action::Update, ResourceRef::new("eks:cluster", name).with_id(arn))
                    .field("logging", Some(have), Some(want))
                    .because(ONE_UPDATE)
            }
            Step::UpdateClusterSupport { name, arn, have, want } => {
                Change::new(Action::Update, ResourceRef::new("eks:cluster", name).with_id(arn))
                    .field("support_type", Some(have), Some(want))
                    .because(ONE_UPDATE)
            }
            Step::TagCluster { name, arn, tags } => {
                Change::new(Action::Update, ResourceRef::new("eks:cluster", name).with_id(arn)).tag_fields(tags)
            }
            Step::CreateAccessEntry { principal } => Change::new(
                Action::Create,
                ResourceRef::new("eks:access-entry", principal),
            )
            .field("policy", None::<&str>, Some(CLUSTER_ADMIN_POLICY)),
            Step::AssociateAccessPolicy { principal } => Change::new(
                Action::Update,
                ResourceRef::new("eks:access-entry", principal),
            )
            .field("policy", None::<&str>, Some(CLUSTER_ADMIN_POLICY)),
            Step::CreateLaunchTemplate { name, disk_size_gib } => {
                Change::new(Action::Create, ResourceRef::new("ec2:launch-template", name))
                    .field("metadata.http_tokens", None::<&str>, Some("required"))
                    .field("metadata.hop_limit", None::<i32>, Some(NODE_METADATA_HOP_LIMIT))
                    .field("root_volume", None::<&str>, Some(format!("gp3 {disk_size_gib} GiB encrypted")))
            }
            Step::UpdateLaunchTemplate { name, id, have, want } => {
                Change::new(Action::Update, ResourceRef::new("ec2:launch-template", name).with_id(id))
                    .field("data", Some(have), Some(want))
                    .because("a new launch template version rolls the nodes")
            }
            Step::CreateNodegroup { name, ami_type, instance_types, scaling, labels } => {
                Change::new(Action::Create, ResourceRef::new("eks:nodegroup", name))
                    .field("ami_type", None::<&str>, Some(ami_type))
                    .field("instance_types", None::<String>, Some(instance_types))
                    .field("scaling", None::<&str>, Some(scaling))
                    .field("labels", None::<&str>, Some(labels))
            }
            Step::ReplaceNodegroup { name, arn, instance_types, ami_type } => {
                let mut c = Change::new(Action::Replace, ResourceRef::new("eks:nodegroup", name).with_id(arn))
                    .because("node group settings that cannot change in place");
                if let Some((have, want)) = instance_types {
                    c = c.field("instance_types", Some(have), Some(want));
                }
                if let Some((have, want)) = ami_type {
                    c = c.field("ami_type", Some(have), Some(want));
                }
                c
            }
            Step::UpdateNodegroup { name, arn, scaling: s, labels, launch_template } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("eks:nodegroup", name).with_id(arn));
                if let Some((have, want)) = s {
                    c = c.field("scaling", Some(scaling(*have)), Some(scaling(*want)));
                }
                if let Some((have, want)) = labels {
                    c = c.field("labels", Some(have), Some(want));
                }
                if let Some((have, want)) = launch_template {
                    c = c
                        .field("launch_template", Some(have), Some(want))
                        .because("rolls the nodes onto the new template")
                        .effect(Effect::Rolling);
                }
                c
            }
            Step::CreateAddon { name, version, pod_identity } => {
                let version = version.as_deref().unwrap_or("(default for the cluster version)");
                let c = Change::new(Action::Create, ResourceRef::new("eks:addon", name)).field(
                    "version",
                    None::<&str>,
                    Some(version),
                );
                match pod_identity {
                    Some(p) => c.field("pod_identity_associations", None::<&str>, Some(p.as_str())),
                    None => c,
                }
            }
            Step::UpdateAddon { name, version, pod_identity } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("eks:addon", name));
                if let Some((have, want)) = version {
                    c = c.field("version", Some(have), Some(want));
                }
                if let Some(p) = pod_identity {
                    c = c.field("pod_identity_associations", Some("(none)"), Some(p.as_str()));
                }
                c
            }
            Step::DeleteAddon { name, version } => Change::new(Action::Delete, ResourceRef::new("eks:addon", name))
                .field("version", Some(version), None::<&str>),
        }
    }
}
