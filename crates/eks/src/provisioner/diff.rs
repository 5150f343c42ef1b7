//! The changes: the observed state against the spec, as typed changes. The plan shows each as
//! one entry; apply executes exactly the list. The node side (launch template, node group,
//! add-ons) depends on what the control plane makes (the node security group's id, the cluster's
//! security group): the plan shows those values as known after apply, and apply computes the
//! node side's changes with the same function once the control plane is converged.

use std::collections::BTreeSet;

#[allow(unused_imports)]
use super::*;

/// A value as it is and as it should be.
type HaveWant = (String, String);

/// Tags of ours missing or different on a resource: (key, before, after).
pub(crate) type Drift = Vec<(String, Option<String>, String)>;

fn drift(want: &Tags, have: &Tags) -> Drift {
    want.iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), have.get(k).cloned(), v.clone()))
        .collect()
}

fn tagged(c: Change, tags: &Drift) -> Change {
    tags.iter().fold(c, |c, (k, before, after)| c.field(format!("tags.{k}"), before.as_ref(), Some(after)))
}

/// A node group's scaling: (min, max, desired).
type Scaling = (i32, i32, i32);

/// The scaling of a node group as the plan shows it.
fn scaling((min, max, desired): Scaling) -> String {
    format!("min {min} desired {desired} max {max}")
}

/// One change of the EKS tier, in the order apply makes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EksChange {
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
    /// The secrets key (a key left without its alias by a crash is aliased instead).
    CreateKey {
        alias: String,
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
    /// Control plane first, one minor version at a time; a downgrade is refused.
    UpgradeCluster {
        name: String,
        arn: String,
        have: String,
        want: String,
        refused: bool,
    },
    /// The secrets key cannot change (refused).
    ReplaceClusterKey {
        name: String,
        arn: String,
        have: String,
        want: String,
    },
    /// Endpoint access and subnets, logging, our tags.
    UpdateCluster {
        name: String,
        arn: String,
        /// (public access CIDRs, subnets), each (have, want).
        endpoint: Option<(HaveWant, HaveWant)>,
        logging: Option<(String, String)>,
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
    /// Scaling and labels (UpdateNodegroupConfig); the Kubernetes version after the control
    /// plane, or the launch template's new version (UpdateNodegroupVersion).
    UpdateNodegroup {
        name: String,
        arn: String,
        scaling: Option<(Scaling, Scaling)>,
        labels: Option<(String, String)>,
        version: Option<(String, String)>,
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

impl Planned for EksChange {
    fn change(&self) -> Change {
        match self {
            EksChange::CreateRole { name, policies, .. } => Change::new(
                Action::Create,
                ResourceRef::new("iam:role", name),
            )
            .field("managed_policies", None::<String>, Some(list(policies))),
            EksChange::UpdateRole { name, arn, trust, policies, tags, .. } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("iam:role", name).with_id(arn));
                if let Some((have, want)) = trust {
                    c = c.field("assume_role_policy", Some(have), Some(want));
                }
                if let Some((have, want)) = policies {
                    c = c.field("managed_policies", Some(list(have)), Some(list(want)));
                }
                tagged(c, tags)
            }
            EksChange::CreateLogGroup { name, retention_days } => Change::new(
                Action::Create,
                ResourceRef::new("logs:log-group", name),
            )
            .field("retention_days", None::<i32>, Some(retention_days)),
            EksChange::LogRetention { name, have, want } => Change::new(
                Action::Update,
                ResourceRef::new("logs:log-group", name),
            )
            .field("retention_days", *have, Some(want)),
            EksChange::CreateKey { alias } => Change::new(
                Action::Create,
                ResourceRef::new("kms:key", format!("alias/{alias}")),
            )
            .field("rotation", None::<bool>, Some(true)),
            EksChange::UpdateKey { alias, arn, restore, tags, .. } => {
                let mut c =
                    Change::new(Action::Update, ResourceRef::new("kms:key", format!("alias/{alias}")).with_id(arn));
                if let Some(state) = restore {
                    c = c
                        .field("state", Some(state), Some("Enabled"))
                        .because("a key scheduled for deletion is restored");
                }
                tagged(c, tags)
            }
            EksChange::CreateNodeSecurityGroup { name } => {
                Change::new(Action::Create, ResourceRef::new("ec2:security-group", name))
            }
            EksChange::CreateCluster { name, version, subnets, cidrs, logs } => {
                Change::new(Action::Create, ResourceRef::new("eks:cluster", name))
                    .field("version", None::<&str>, Some(version))
                    .field("subnets", None::<String>, Some(subnets))
                    .field("endpoint_public_access_cidrs", None::<String>, Some(cidrs))
                    .field("logging", None::<String>, Some(logs))
                    .field("authentication_mode", None::<&str>, Some("API_AND_CONFIG_MAP"))
            }
            EksChange::UpgradeCluster { name, arn, have, want, refused } => {
                let c = Change::new(Action::Update, ResourceRef::new("eks:cluster", name).with_id(arn)).field(
                    "version",
                    Some(have),
                    Some(want),
                );
                if *refused {
                    c.because("downgrades are refused")
                } else {
                    c.because("control plane first, one minor version at a time; then the node group")
                }
            }
            EksChange::ReplaceClusterKey { name, arn, have, want } => {
                Change::new(Action::Replace, ResourceRef::new("eks:cluster", name).with_id(arn))
                    .field("secrets encryption key", Some(have), Some(want))
                    .because("a cluster's secrets encryption key cannot change")
            }
            EksChange::UpdateCluster { name, arn, endpoint, logging, tags } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("eks:cluster", name).with_id(arn));
                if let Some(((have_cidrs, want_cidrs), (have_subnets, want_subnets))) = endpoint {
                    c = c.field("endpoint_public_access_cidrs", Some(have_cidrs), Some(want_cidrs)).field(
                        "subnets",
                        Some(have_subnets),
                        Some(want_subnets),
                    );
                }
                if let Some((have, want)) = logging {
                    c = c.field("logging", Some(have), Some(want));
                }
                tagged(c, tags)
            }
            EksChange::CreateAccessEntry { principal } => Change::new(
                Action::Create,
                ResourceRef::new("eks:access-entry", principal),
            )
            .field("policy", None::<&str>, Some(CLUSTER_ADMIN_POLICY)),
            EksChange::AssociateAccessPolicy { principal } => Change::new(
                Action::Update,
                ResourceRef::new("eks:access-entry", principal),
            )
            .field("policy", None::<&str>, Some(CLUSTER_ADMIN_POLICY)),
            EksChange::CreateLaunchTemplate { name, disk_size_gib } => {
                Change::new(Action::Create, ResourceRef::new("ec2:launch-template", name))
                    .field("metadata.http_tokens", None::<&str>, Some("required"))
                    .field("metadata.hop_limit", None::<i32>, Some(NODE_METADATA_HOP_LIMIT))
                    .field("root_volume", None::<&str>, Some(format!("gp3 {disk_size_gib} GiB encrypted")))
            }
            EksChange::UpdateLaunchTemplate { name, id, have, want } => {
                Change::new(Action::Update, ResourceRef::new("ec2:launch-template", name).with_id(id))
                    .field("data", Some(have), Some(want))
                    .because("a new launch template version rolls the nodes")
            }
            EksChange::CreateNodegroup { name, ami_type, instance_types, scaling, labels } => {
                Change::new(Action::Create, ResourceRef::new("eks:nodegroup", name))
                    .field("ami_type", None::<&str>, Some(ami_type))
                    .field("instance_types", None::<String>, Some(instance_types))
                    .field("scaling", None::<&str>, Some(scaling))
                    .field("labels", None::<&str>, Some(labels))
            }
            EksChange::ReplaceNodegroup { name, arn, instance_types, ami_type } => {
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
            EksChange::UpdateNodegroup { name, arn, scaling: s, labels, version, launch_template } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("eks:nodegroup", name).with_id(arn));
                if let Some((have, want)) = s {
                    c = c.field("scaling", Some(scaling(*have)), Some(scaling(*want)));
                }
                if let Some((have, want)) = labels {
                    c = c.field("labels", Some(have), Some(want));
                }
                if let Some((have, want)) = version {
                    c = c.field("version", Some(have), Some(want)).because("after the control plane");
                }
                if let Some((have, want)) = launch_template {
                    c = c
                        .field("launch_template", Some(have), Some(want))
                        .because("rolls the nodes onto the new template");
                }
                c
            }
            EksChange::CreateAddon { name, version, pod_identity } => {
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
            EksChange::UpdateAddon { name, version, pod_identity } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("eks:addon", name));
                if let Some((have, want)) = version {
                    c = c.field("version", Some(have), Some(want));
                }
                if let Some(p) = pod_identity {
                    c = c.field("pod_identity_associations", Some("(none)"), Some(p.as_str()));
                }
                c
            }
            EksChange::DeleteAddon { name, version } => Change::new(
                Action::Delete,
                ResourceRef::new("eks:addon", name),
            )
            .field("version", Some(version), None::<&str>),
        }
    }
}

/// Pushes `change` when its plan entry has a field (each difference is one field).
fn push_if_changed(out: &mut Vec<EksChange>, change: EksChange) {
    if !change.change().fields.is_empty() {
        out.push(change);
    }
}

impl EksProvisioner {
    pub(super) fn diff_tier(&self, ctx: &Context, spec: &EksSpec, o: &ObservedEks) -> Plan {
        let mut changes = control_plane_changes(ctx, spec, o);
        let node_sg = o.node_security_group.as_ref().map(|s| s.id.as_str());
        changes.extend(node_changes(ctx, spec, o, node_sg, o.cluster.as_ref(), o.cluster.is_none()));
        EksChange::plan(&changes)
    }
}

/// An existing role's change (trust, missing managed policies, our tags); `None` when converged.
pub(super) fn role_change(ctx: &Context, index: usize, want: &RoleWant, have: &RoleInfo) -> Option<EksChange> {
    let missing = want.policies.iter().any(|p| !have.attached.contains(p));
    let change = EksChange::UpdateRole {
        index,
        name: want.name.clone(),
        arn: have.arn.clone(),
        trust: (serde_json::from_str::<Value>(&have.trust).ok().as_ref() != Some(&want.trust))
            .then(|| (have.trust.clone(), want.trust.to_string())),
        policies: missing.then(|| (have.attached.clone(), want.policies.clone())),
        tags: drift(&ctx.tags_for(Tier::Eks, want.component, &want.name), &have.tags),
    };
    (!change.change().fields.is_empty()).then_some(change)
}

/// The control plane's changes: roles, log group, key, node security group, cluster, access.
pub(super) fn control_plane_changes(ctx: &Context, spec: &EksSpec, o: &ObservedEks) -> Vec<EksChange> {
    let names = Names::of(ctx);
    let mut out = Vec::new();
    for (index, (want, have)) in role_wants(ctx, &names, spec).iter().zip(o.roles()).enumerate() {
        match have {
            None => out.push(EksChange::CreateRole { index, name: want.name.clone(), policies: want.policies.clone() }),
            Some(have) => out.extend(role_change(ctx, index, want, have)),
        }
    }
    match &o.log_group {
        None => out
            .push(EksChange::CreateLogGroup { name: names.log_group.clone(), retention_days: spec.log_retention_days }),
        // One without our tag (made by EKS for an older cluster, or by someone else) is left as is.
        Some(g) if ctx.owns_tags(&g.tags) && g.retention_days != Some(spec.log_retention_days) => {
            out.push(EksChange::LogRetention {
                name: names.log_group.clone(),
                have: g.retention_days,
                want: spec.log_retention_days,
            })
        }
        _ => {}
    }
    match &o.key {
        None => out.push(EksChange::CreateKey { alias: names.key_alias.clone() }),
        Some(k) => push_if_changed(
            &mut out,
            EksChange::UpdateKey {
                alias: names.key_alias.clone(),
                arn: k.arn.clone(),
                key_id: k.key_id.clone(),
                restore: (k.state == "PendingDeletion" || k.state == "Disabled").then(|| k.state.clone()),
                tags: drift(&ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias), &k.tags),
            },
        ),
    }
    if o.node_security_group.is_none() {
        out.push(EksChange::CreateNodeSecurityGroup { name: names.node_security_group.clone() });
    }
    let want_logs: BTreeSet<String> = spec.log_types.iter().cloned().collect();
    match &o.cluster {
        None => out.push(EksChange::CreateCluster {
            name: names.cluster.clone(),
            version: spec.kubernetes_version.clone(),
            subnets: list(&spec.private_subnet_ids),
            cidrs: list(&spec.endpoint.public_access_cidrs),
            logs: list(&want_logs),
        }),
        Some(have) => {
            if have.version != spec.kubernetes_version {
                out.push(EksChange::UpgradeCluster {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    have: have.version.clone(),
                    want: spec.kubernetes_version.clone(),
                    refused: next_version(&have.version, &spec.kubernetes_version).is_err(),
                });
            }
            if let (Some(have_key), Some(k)) = (&have.secrets_key_arn, &o.key)
                && *have_key != k.arn
            {
                out.push(EksChange::ReplaceClusterKey {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    have: have_key.clone(),
                    want: k.arn.clone(),
                });
            }
            push_if_changed(
                &mut out,
                EksChange::UpdateCluster {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    endpoint: endpoint_drift(have, spec).then(|| {
                        (
                            (list(&have.public_access_cidrs), list(&spec.endpoint.public_access_cidrs)),
                            (list(sorted(&have.subnet_ids)), list(&spec.private_subnet_ids)),
                        )
                    }),
                    logging: (have.enabled_logs != want_logs).then(|| (list(&have.enabled_logs), list(&want_logs))),
                    tags: drift(&ctx.tags_for(Tier::Eks, "cluster", &names.cluster), &have.tags),
                },
            );
        }
    }
    for principal in &spec.admin_principals {
        match o.access.get(principal) {
            None => out.push(EksChange::CreateAccessEntry { principal: principal.clone() }),
            Some(p) if !p.iter().any(|a| a.ends_with(CLUSTER_ADMIN_POLICY)) => {
                out.push(EksChange::AssociateAccessPolicy { principal: principal.clone() })
            }
            Some(_) => {}
        }
    }
    out
}

/// The node side's changes: launch template, node group, add-ons. `node_sg` and `cluster` are
/// the control plane's (`None` while it is to be made: shown as known after apply);
/// `cluster_created` says the cluster is made by this run (its security group is then unknown).
pub(super) fn node_changes(
    ctx: &Context,
    spec: &EksSpec,
    o: &ObservedEks,
    node_sg: Option<&str>,
    cluster: Option<&ClusterInfo>,
    cluster_created: bool,
) -> Vec<EksChange> {
    let names = Names::of(ctx);
    let mut out = Vec::new();
    let lt_want = launch_template_data(spec, lt_security_groups(node_sg.unwrap_or("(known after apply)"), cluster));
    let mut lt_updated = false;
    match &o.launch_template {
        None => out.push(EksChange::CreateLaunchTemplate {
            name: names.launch_template.clone(),
            disk_size_gib: spec.node_group.disk_size_gib,
        }),
        Some(lt) => {
            let mut have = lt.data.clone();
            have.security_group_ids.sort();
            // With the cluster made by this run, its security group (part of the data) is known
            // only after apply: the template is compared once it is.
            if have != lt_want && !cluster_created {
                lt_updated = true;
                out.push(EksChange::UpdateLaunchTemplate {
                    name: names.launch_template.clone(),
                    id: lt.id.clone(),
                    have: format!("{:?}", lt.data),
                    want: format!("{lt_want:?}"),
                });
            }
        }
    }
    let ng = &spec.node_group;
    let want_scaling = (ng.min, ng.max, ng.desired);
    match &o.nodegroup {
        None => out.push(EksChange::CreateNodegroup {
            name: names.nodegroup.clone(),
            ami_type: ng.ami_type.clone(),
            instance_types: list(&ng.instance_types),
            scaling: scaling(want_scaling),
            labels: format!("{:?}", ng.labels),
        }),
        Some(have) => {
            let replace = EksChange::ReplaceNodegroup {
                name: names.nodegroup.clone(),
                arn: have.arn.clone(),
                instance_types: (sorted(&have.instance_types) != sorted(&ng.instance_types))
                    .then(|| (list(&have.instance_types), list(&ng.instance_types))),
                ami_type: (have.ami_type != ng.ami_type).then(|| (have.ami_type.clone(), ng.ami_type.clone())),
            };
            push_if_changed(&mut out, replace);
            let have_scaling = (have.min, have.max, have.desired);
            let template = o.launch_template.as_ref().map(|lt| (lt.id.clone(), lt.latest_version.to_string()));
            let launch_template = match (&have.launch_template, &template) {
                (Some(h), _) if lt_updated => Some((format!("{h:?}"), "(known after apply)".to_owned())),
                (Some(h), Some(t)) if h != t => Some((format!("{h:?}"), format!("{t:?}"))),
                _ => None,
            };
            push_if_changed(
                &mut out,
                EksChange::UpdateNodegroup {
                    name: names.nodegroup.clone(),
                    arn: have.arn.clone(),
                    scaling: (have_scaling != want_scaling).then_some((have_scaling, want_scaling)),
                    labels: (have.labels != ng.labels)
                        .then(|| (format!("{:?}", have.labels), format!("{:?}", ng.labels))),
                    version: have
                        .version
                        .clone()
                        .filter(|v| *v != spec.kubernetes_version)
                        .map(|v| (v, spec.kubernetes_version.clone())),
                    launch_template,
                },
            );
        }
    }
    for addon in &spec.addons {
        let want = o.addon_versions.get(addon).cloned();
        let pod_identity = (addon == EBS_CSI_ADDON)
            .then(|| format!("kube-system/{EBS_CSI_SERVICE_ACCOUNT} -> {}", names.ebs_csi_role));
        match o.addons.get(addon) {
            None => out.push(EksChange::CreateAddon { name: addon.clone(), version: want, pod_identity }),
            Some(a) => push_if_changed(
                &mut out,
                EksChange::UpdateAddon {
                    name: addon.clone(),
                    version: want.filter(|v| *v != a.version).map(|v| (a.version.clone(), v)),
                    pod_identity: pod_identity.filter(|_| a.pod_identity_associations.is_empty()),
                },
            ),
        }
    }
    for (name, a) in o.addons.iter().filter(|(n, a)| !spec.addons.contains(n) && made_by_this_tier(ctx, &a.tags)) {
        out.push(EksChange::DeleteAddon { name: name.clone(), version: a.version.clone() });
    }
    out
}

pub(super) fn endpoint_drift(cluster: &ClusterInfo, spec: &EksSpec) -> bool {
    let want_public = !spec.endpoint.public_access_cidrs.is_empty();
    let want_subnets: Vec<String> = spec.private_subnet_ids.iter().map(|s| s.as_str().to_owned()).collect();
    !cluster.endpoint_private
        || cluster.endpoint_public != want_public
        || (want_public && sorted(&cluster.public_access_cidrs) != sorted(&spec.endpoint.public_access_cidrs))
        || sorted(&cluster.subnet_ids) != sorted(&want_subnets)
}
