//! Diff: OpenSearch's typed changes from one observation. The plan shows each as one entry
//! and apply executes exactly the list.

use dify_stack_core::ids::Arn;
use dify_stack_core::{Action, Change, Context, Effect, Planned, ResourceRef};
use serde_json::Value;

use super::{ObservedOpenSearch, OpenSearchProvisioner, PORT, SERVICE_LINKED_ROLE, SERVICE_LINKED_ROLE_SERVICE};
use super::{TLS_POLICY, domain_name, sorted};
use crate::client::{DomainConfig, DomainInfo};
use crate::common::{DatastoresError, typical};
use crate::secrets::SecretKind;
use crate::security_group::{self, SgChange, SgWant};
use crate::spec::DatastoresSpec;
use crate::upgrade::{self, Step};

/// One change of OpenSearch, in the order apply makes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OpenSearchChange {
    /// The master user's secret is generated (`<stack>/opensearch-master`).
    Secret { name: String },
    /// The account's OpenSearch service-linked role is created (kept on destroy).
    ServiceLinkedRole,
    /// The security group.
    SecurityGroup(SgChange),
    /// The domain is created as the spec says.
    Create { name: String, engine_version: String, nodes: String, zone_awareness: String, ebs: String },
    /// The engine version through UpgradeDomain, a blue/green deployment, never a replacement
    /// (other tools replaced the domain and lost its index: terraform-aws-opensearch #43). The
    /// developer guide: an upgrade runs a pre-upgrade check, takes a snapshot (and restores it if
    /// the upgrade fails), then upgrades ("Upgrading Amazon OpenSearch Service domains"); a
    /// blue/green deployment builds the new environment beside the old, migrates the data and
    /// switches "with no data loss", keeping the original in case the deployment fails ("Making
    /// configuration changes in Amazon OpenSearch Service"); every domain also takes hourly
    /// automated snapshots kept 14 days ("Creating index snapshots in Amazon OpenSearch
    /// Service"). The upgrade "is irreversible and can't be paused or cancelled. During an
    /// upgrade, you can't make configuration changes" ("Upgrading a domain"). `refused` says why
    /// it cannot run (a downgrade, a path GetCompatibleVersions does not offer) and the fix:
    /// apply refuses before any write.
    Upgrade { name: String, arn: Arn, have: String, want: String, nodes: i32, refused: Option<String> },
    /// What only a new domain can change (encryption, TLS policy): refused, the domain holds
    /// the search index.
    Replace { name: String, arn: Arn, fields: Vec<(&'static str, String, String)> },
    /// UpdateDomainConfig of the settings that differ (with the security group's id known only
    /// after apply when the group is created by the same run), and our tags.
    Update { name: String, arn: Arn, settings: Vec<(&'static str, String, String)>, tags: dify_stack_core::TagDrift },
}

impl Planned for OpenSearchChange {
    fn change(&self) -> Change {
        let domain = |name: &str| ResourceRef::new("opensearch:domain", name);
        match self {
            OpenSearchChange::Secret { name } => Change::new(
                Action::Create,
                ResourceRef::new("secretsmanager:secret", name),
            )
            .field("value", None::<&str>, Some("(generated)")),
            OpenSearchChange::ServiceLinkedRole => {
                Change::new(Action::Create, ResourceRef::new("iam:service-linked-role", SERVICE_LINKED_ROLE))
                    .field("service", None::<&str>, Some(SERVICE_LINKED_ROLE_SERVICE))
                    .because("the account has no OpenSearch VPC domain yet; kept on destroy (account-wide)")
            }
            OpenSearchChange::SecurityGroup(c) => c.change(),
            OpenSearchChange::Create { name, engine_version, nodes, zone_awareness, ebs } => {
                Change::new(Action::Create, domain(name))
                    .field("engine_version", None::<&str>, Some(engine_version))
                    .field("nodes", None::<&str>, Some(nodes))
                    .field("zone_awareness", None::<&str>, Some(zone_awareness))
                    .field("ebs", None::<&str>, Some(ebs))
                    .field("encryption", None::<&str>, Some("at rest, node-to-node, HTTPS TLS 1.2"))
                    .field("fine_grained_access_control", None::<bool>, Some(true))
            }
            OpenSearchChange::Upgrade { name, arn, have, want, nodes, refused } => {
                let c = Change::new(Action::Update, domain(name).with_id(arn.as_str())).field(
                    "engine_version",
                    Some(have),
                    Some(want),
                );
                match refused {
                    Some(reason) => c.because(format!("refused: {reason}")),
                    None => c
                        .because(format!(
                            "UpgradeDomain, a blue/green deployment: after a pre-upgrade check and a snapshot \
                             (restored if the upgrade fails), a new fleet on {want} takes over the shards and the \
                             traffic; the old fleet serves until the switch. Hourly automated snapshots (kept 14 \
                             days) also hold the index. No other change meanwhile; not reversible"
                        ))
                        .effect(Effect::BlueGreen)
                        .typically(typical::opensearch_upgrade(*nodes)),
                }
            }
            OpenSearchChange::Replace { name, arn, fields } => fields.iter().fold(
                Change::new(Action::Replace, domain(name).with_id(arn.as_str())).because("cannot change in place"),
                |c, (f, have, want)| c.field(*f, Some(have), Some(want)),
            ),
            OpenSearchChange::Update { name, arn, settings, tags } => {
                let c = settings
                    .iter()
                    .fold(Change::new(Action::Update, domain(name).with_id(arn.as_str())), |c, (f, h, w)| {
                        c.field(*f, Some(h), Some(w))
                    });
                c.tag_fields(tags)
            }
        }
    }
}

/// One change of OpenSearch, as [`OpenSearchProvisioner`]'s
/// [`changes`](dify_stack_core::Provisioner::changes) computes it and its
/// [`execute`](dify_stack_core::Provisioner::execute) carries it out. Opaque: what a plan shows
/// of it is its [`Planned::change`].
#[derive(Debug, Clone)]
pub struct OpenSearchStep(pub(crate) OpenSearchChange);

impl Planned for OpenSearchStep {
    fn change(&self) -> Change {
        self.0.change()
    }
}

impl OpenSearchChange {
    /// The refusal of a change that cannot run, checked before any write.
    pub(super) fn refusal(&self) -> Option<DatastoresError> {
        match self {
            OpenSearchChange::Upgrade { name, have, want, refused: Some(reason), .. } => {
                Some(DatastoresError::UpgradeRefused {
                    resource: name.clone(),
                    field: "engine_version".to_owned(),
                    have: have.clone(),
                    want: want.clone(),
                    reason: reason.clone(),
                })
            }
            _ => None,
        }
    }
}

/// The engine version change of an existing domain: none, the upgrade, or the upgrade refused
/// with the fix. The paths are the service's (GetCompatibleVersions, read by observe).
fn engine_change(
    name: &str,
    d: &DomainInfo,
    spec: &DatastoresSpec,
    o: &ObservedOpenSearch,
) -> Option<OpenSearchChange> {
    let (have, want) = (d.engine_version.clone(), spec.opensearch.engine_version.clone());
    let refused = match upgrade::search_step(&have, &want) {
        Step::Same => return None,
        Step::Downgrade => Some(format!(
            "OpenSearch Service upgrades only to later versions and an upgrade cannot be undone; keep \
             opensearch.engine_version = \"{have}\": an earlier version needs a new domain restored from a manual \
             snapshot"
        )),
        Step::Unknown => Some(format!(
            "{have:?} and {want:?} do not compare as versions; set opensearch.engine_version to {have:?} or a later \
             version"
        )),
        Step::Upgrade { .. } => {
            let targets = o.upgrade_targets.clone().unwrap_or_default();
            (!targets.contains(&want)).then(|| {
                let offered = if targets.is_empty() { "none".to_owned() } else { targets.join(", ") };
                format!(
                    "OpenSearch Service does not upgrade {have} to {want} directly (GetCompatibleVersions offers: \
                     {offered}); set opensearch.engine_version to one of those, apply, then continue to {want}"
                )
            })
        }
    };
    let nodes = spec.opensearch.instance_count;
    Some(OpenSearchChange::Upgrade { name: name.to_owned(), arn: d.arn.clone(), have, want, nodes, refused })
}

/// The security group as OpenSearch wants it.
pub(super) fn sg_want<'a>(spec: &'a DatastoresSpec, name: &'a str, sources: &'a [String]) -> SgWant<'a> {
    SgWant { vpc_id: &spec.vpc_id, name, component: "opensearch-security-group", port: PORT, sources }
}

/// OpenSearch's changes against one observation, in the order apply makes them.
pub(crate) fn changes(ctx: &Context, spec: &DatastoresSpec, o: &ObservedOpenSearch) -> Vec<OpenSearchChange> {
    let (name, sgn) = (domain_name(ctx), crate::names::search_security_group(ctx));
    let mut out = Vec::new();
    if !o.secret {
        out.push(OpenSearchChange::Secret { name: SecretKind::OpenSearchMaster.name(ctx) });
    }
    if !o.service_linked_role {
        out.push(OpenSearchChange::ServiceLinkedRole);
    }
    let sources = security_group::sources(spec);
    if let Some(c) = security_group::change(ctx, sg_want(spec, &sgn, &sources), o.security_group.as_ref()) {
        out.push(OpenSearchChange::SecurityGroup(c));
    }
    let sg_id = o.security_group.as_ref().map_or("(known after apply)", |s| s.id.as_str());
    let want = OpenSearchProvisioner::config_for(ctx, spec, sg_id);
    let Some(d) = &o.domain else {
        out.push(OpenSearchChange::Create {
            name,
            engine_version: want.engine_version.clone(),
            nodes: format!("{} x {}", want.instance_count, want.instance_type),
            zone_awareness: format!("{:?}", want.zone_awareness),
            ebs: format!("gp3 {} GiB", want.volume_gib),
        });
        return out;
    };
    let fixed = immutable_drift(d);
    if !fixed.is_empty() {
        out.push(OpenSearchChange::Replace { name: name.clone(), arn: d.arn.clone(), fields: fixed });
    }
    // Before the settings: UpdateDomainConfig is refused while an upgrade runs.
    out.extend(engine_change(&name, d, spec, o));
    let settings = settings_drift(d, &want);
    let tags: Vec<_> = dify_stack_core::tag_drift(&want.tags, &d.tags);
    if !(settings.is_empty() && tags.is_empty()) {
        out.push(OpenSearchChange::Update { name, arn: d.arn.clone(), settings, tags });
    }
    out
}

/// The ids as the plan shows them (`["subnet-1"]`, as the strings they were).
fn strs<T: AsRef<str>>(ids: &[T]) -> Vec<&str> {
    ids.iter().map(AsRef::as_ref).collect()
}

pub(super) fn settings_drift(d: &DomainInfo, want: &DomainConfig) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    if d.instance_type != want.instance_type {
        out.push(("instance_type", d.instance_type.clone(), want.instance_type.clone()));
    }
    if d.instance_count != want.instance_count {
        out.push(("instance_count", d.instance_count.to_string(), want.instance_count.to_string()));
    }
    if d.zone_awareness != want.zone_awareness {
        out.push(("zone_awareness", format!("{:?}", d.zone_awareness), format!("{:?}", want.zone_awareness)));
    }
    if d.volume != Some(("gp3".to_owned(), want.volume_gib)) {
        out.push(("ebs", format!("{:?}", d.volume), format!("gp3 {} GiB", want.volume_gib)));
    }
    if sorted(d.subnet_ids.clone()) != sorted(want.subnet_ids.clone())
        || d.security_group_ids != [want.security_group_id.clone()]
    {
        out.push((
            "vpc",
            format!("{:?} {:?}", strs(&d.subnet_ids), strs(&d.security_group_ids)),
            format!("{:?} {:?}", strs(&want.subnet_ids), want.security_group_id.as_str()),
        ));
    }
    let have_policy: Option<Value> = d.access_policy.as_deref().and_then(|p| serde_json::from_str(p).ok());
    let want_policy: Option<Value> = serde_json::from_str(&want.access_policy).ok();
    if have_policy != want_policy {
        out.push(("access_policy", d.access_policy.clone().unwrap_or_default(), want.access_policy.clone()));
    }
    out
}

fn immutable_drift(d: &DomainInfo) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for (field, on) in [
        ("encryption_at_rest", d.at_rest_encryption),
        ("node_to_node_encryption", d.node_to_node),
        ("enforce_https", d.enforce_https),
        ("fine_grained_access_control", d.fine_grained),
    ] {
        if !on {
            out.push((field, "false".to_owned(), "true".to_owned()));
        }
    }
    if d.tls_policy.as_deref() != Some(TLS_POLICY) {
        out.push(("tls_policy", d.tls_policy.clone().unwrap_or_default(), TLS_POLICY.to_owned()));
    }
    out
}
