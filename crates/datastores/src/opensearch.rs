//! OpenSearch: security group and a VPC domain with encryption at rest, node-to-node
//! encryption, HTTPS only with TLS 1.2, fine-grained access control with an internal master
//! user whose generated password lives in Secrets Manager, and an access policy scoped to the
//! domain ARN. There is no SDK waiter: DescribeDomain is polled until the domain is no longer
//! processing and its VPC endpoint is set.

mod apply;
mod diff;

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, SecretArn, SecurityGroupId, SubnetId};
use dify_stack_core::{AwsError, Context, Provisioner, ResourceRef, SpecErrors, Tier};
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::{DomainConfig, DomainInfo, OpenSearchApi, SecretsApi, SgApi, SgInfo, UpgradeStatusInfo};
use crate::common::{DataPolicy, DatastoresError, Result, caps, ready_from, wait_for, wait_state};
use crate::secrets::{SecretKind, delete_secret};
use crate::security_group;
use crate::spec::{DatastoresSpec, StoreSelector};
use crate::upgrade::{self, Step};
pub use diff::OpenSearchStep;
use dify_stack_core::Probe;
use dify_stack_core::wait::Condition;
use dify_stack_core::{AwsAt, NotOwned};

/// HTTPS.
pub const PORT: i32 = 443;
/// The TLS policy the domain enforces.
pub const TLS_POLICY: &str = "Policy-Min-TLS-1-2-2019-07";

/// The domain name, `<stack>-search`.
pub fn domain_name(ctx: &Context) -> String {
    crate::names::search_domain(ctx)
}

/// The access policy: anyone who can reach the domain may call its HTTP API, on this domain
/// only. Dify talks to OpenSearch as the internal master user over HTTP basic auth; a policy
/// naming an IAM principal would demand SigV4-signed requests and answer Dify with 403. The
/// gating is done by the VPC (no public endpoint), the security group (cluster only) and
/// fine-grained access control, which authenticates every request ("Fine-grained access control
/// in Amazon OpenSearch Service": with FGAC and the internal user database, use an open domain
/// access policy; LESSONS.md #27).
pub fn access_policy(ctx: &Context, domain: &str) -> Value {
    let p = ctx.partition();
    let account = ctx.account_id().unwrap_or_default();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": "*" },
            "Action": "es:ESHttp*",
            "Resource": format!("{}/*", p.arn("es", ctx.region(), account, &format!("domain/{domain}"))),
        }],
    })
}

/// The account-wide service-linked role a VPC domain needs. On an account that never had a VPC
/// domain, CreateDomain with VPC options fails with "Before you can proceed, you must enable a
/// service-linked role to give Amazon OpenSearch Service permissions to access your VPC"
/// (OpenSearch developer guide, "Using service-linked roles"; terraform-aws-opensearch #27,
/// copilot-cli #3006). It is shared by every domain in the account: destroy never deletes it.
pub const SERVICE_LINKED_ROLE: &str = "AWSServiceRoleForAmazonOpenSearchService";
/// The service that owns [`SERVICE_LINKED_ROLE`] (`iam:CreateServiceLinkedRole` takes this name;
/// `es.amazonaws.com` makes the legacy Elasticsearch role instead).
pub const SERVICE_LINKED_ROLE_SERVICE: &str = "opensearchservice.amazonaws.com";

/// True for CreateDomain's refusal while the service-linked role is missing or not yet
/// visible to OpenSearch (IAM is eventually consistent: retry briefly after creating it).
pub(crate) fn is_missing_service_linked_role(e: &AwsError) -> bool {
    e.message.as_deref().is_some_and(|m| m.contains("service-linked role"))
}

/// What OpenSearch hands on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OpenSearchOutput {
    /// Domain name.
    pub domain_name: String,
    /// Domain ARN.
    pub arn: Arn,
    /// VPC endpoint host.
    pub endpoint: String,
    /// Port (HTTPS).
    pub port: i32,
    /// Master user secret (`{"username","password"}`).
    pub master_secret_arn: SecretArn,
    /// Security group.
    pub security_group_id: SecurityGroupId,
}

/// What exists.
#[derive(Debug, Clone, Default)]
pub struct ObservedOpenSearch {
    /// Security group.
    pub security_group: Option<SgInfo>,
    /// Domain.
    pub domain: Option<DomainInfo>,
    /// Master secret exists.
    pub secret: bool,
    /// The account's service-linked role exists (read only while the domain is missing: a VPC
    /// domain cannot exist without it).
    pub service_linked_role: bool,
    /// The versions GetCompatibleVersions offers the running version: read only when a later
    /// engine version is wanted.
    pub upgrade_targets: Option<Vec<String>>,
}

/// Provisions OpenSearch.
#[derive(Clone)]
pub struct OpenSearchProvisioner {
    search: Arc<dyn OpenSearchApi>,
    sg: Arc<dyn SgApi>,
    secrets: Arc<dyn SecretsApi>,
}

impl std::fmt::Debug for OpenSearchProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchProvisioner").finish_non_exhaustive()
    }
}

pub(crate) fn subnets(spec: &DatastoresSpec) -> Vec<SubnetId> {
    let mut seen = std::collections::BTreeSet::new();
    spec.subnets
        .iter()
        .filter(|s| seen.insert(s.availability_zone.to_string()))
        .take(spec.opensearch.az_count())
        .map(|s| s.id.clone())
        .collect()
}

pub(crate) fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

impl OpenSearchProvisioner {
    /// A provisioner over the given clients.
    pub fn new(search: Arc<dyn OpenSearchApi>, sg: Arc<dyn SgApi>, secrets: Arc<dyn SecretsApi>) -> Self {
        OpenSearchProvisioner { search, sg, secrets }
    }

    /// The domain as the spec wants it, in security group `sg`.
    pub(crate) fn config_for(ctx: &Context, spec: &DatastoresSpec, sg: &str) -> DomainConfig {
        let o = &spec.opensearch;
        let name = domain_name(ctx);
        DomainConfig {
            access_policy: access_policy(ctx, &name).to_string(),
            name,
            engine_version: o.engine_version.clone(),
            instance_type: o.instance_type.clone(),
            instance_count: o.instance_count,
            zone_awareness: o.zone_awareness.then(|| o.az_count() as i32),
            volume_gib: o.volume_gib,
            subnet_ids: subnets(spec),
            security_group_id: SecurityGroupId::new(sg),
            master: None,
            tags: ctx.tags_for(Tier::Datastores, "opensearch", &domain_name(ctx)),
        }
    }

    /// Creates the account's OpenSearch service-linked role when it is missing. "Already
    /// exists" is success: IAM answers a second CreateServiceLinkedRole with `InvalidInput`
    /// "Service role name ... has been taken in this account" (seen in terraform-aws-elasticsearch
    /// #59 and common-voice PR #2196), or another run may have made it in between.
    pub(crate) async fn ensure_service_linked_role(&self) -> Result<()> {
        if self.search.service_linked_role_exists().await.at("GetRole", SERVICE_LINKED_ROLE)? {
            return Ok(());
        }
        match self.search.create_service_linked_role().await {
            Ok(()) => {
                tracing::info!(role = SERVICE_LINKED_ROLE, "created the OpenSearch service-linked role");
                Ok(())
            }
            Err(e) if e.is_already_exists() || e.message.as_deref().is_some_and(|m| m.contains("has been taken")) => {
                Ok(())
            }
            Err(e) => Err(e.at("CreateServiceLinkedRole", SERVICE_LINKED_ROLE).into()),
        }
    }

    /// Polls until the domain is not processing and has its VPC endpoint.
    pub(crate) async fn wait_ready(&self, ctx: &Context, name: &str) -> Result<DomainInfo> {
        let fetch = || async { Ok(self.search.describe(name.to_owned()).await.at("DescribeDomain", name)?) };
        wait_state(
            ctx,
            format!("OpenSearch domain {name} to be ready"),
            caps::OPENSEARCH,
            Some(ready_from::OPENSEARCH),
            fetch,
            domain_ready(name),
        )
        .await?
        .ok_or_else(|| DatastoresError::Failed {
            kind: "OpenSearch domain",
            name: name.to_owned(),
            status: "gone".to_owned(),
        })
    }
}

impl OpenSearchProvisioner {
    /// Waits until the upgrade to `want` has succeeded (GetUpgradeStatus) and the domain is no
    /// longer processing it (DescribeDomain).
    pub(crate) async fn wait_upgraded(&self, ctx: &Context, name: &str, want: &str) -> Result<DomainInfo> {
        let fetch = || async {
            let Some(d) = self.search.describe(name.to_owned()).await.at("DescribeDomain", name)? else {
                return Ok(None);
            };
            let status = self.search.upgrade_status(name.to_owned()).await.at("GetUpgradeStatus", name)?;
            Ok(Some((status, d)))
        };
        let what = format!("OpenSearch domain {name} to run {want} (blue/green)");
        let done = wait_state(ctx, what, caps::OPENSEARCH_UPGRADE, None, fetch, domain_upgraded(name, want)).await?;
        let Some((status, d)) = done else {
            return Err(DatastoresError::Failed {
                kind: "OpenSearch domain",
                name: name.to_owned(),
                status: "gone".into(),
            });
        };
        if status.is_some_and(|s| s.status == "SUCCEEDED_WITH_ISSUES") {
            tracing::warn!(domain = %name, version = %want, "the upgrade succeeded with issues: see its upgrade history");
        }
        Ok(d)
    }
}

/// The condition of an engine upgrade: GetUpgradeStatus says the `UPGRADE` step succeeded
/// (`SUCCEEDED`, or `SUCCEEDED_WITH_ISSUES`) and DescribeDomain shows the wanted version, not
/// processing (the blue/green switch and the old fleet's removal come after the step; OpenSearch
/// developer guide, "Upgrading Amazon OpenSearch Service domains": pre-upgrade check, snapshot,
/// upgrade). A `FAILED` step while the domain no longer processes ends the wait, as does a domain
/// being deleted or gone.
pub(crate) fn domain_upgraded<'a>(
    name: &'a str,
    want: &'a str,
) -> impl Condition<(Option<UpgradeStatusInfo>, DomainInfo), DatastoresError> + 'a {
    let failed =
        move |status: String| DatastoresError::Failed { kind: "OpenSearch domain", name: name.to_owned(), status };
    move |state: Option<&(Option<UpgradeStatusInfo>, DomainInfo)>| match state {
        None => Err(failed("gone".to_owned())),
        Some((_, d)) if d.deleted => Err(failed("being deleted".to_owned())),
        Some((Some(u), d)) if u.status == "FAILED" && !d.processing && d.engine_version != want => {
            Err(failed(format!(
                "not upgraded to {want}: the {} step failed (GetUpgradeStatus) and it stays on {}; see its upgrade \
             history (GetUpgradeHistory) for the cause, fix it and apply again",
                u.step, d.engine_version
            )))
        }
        Some((Some(u), d))
            if u.step == "UPGRADE"
                && (u.status == "SUCCEEDED" || u.status == "SUCCEEDED_WITH_ISSUES")
                && !d.processing
                && d.engine_version == want =>
        {
            Ok(Probe::Done(()))
        }
        Some((u, d)) => {
            let step = u.as_ref().map_or("no upgrade status yet".to_owned(), |u| format!("{} {}", u.step, u.status));
            Ok(Probe::Pending(format!("{step}{}", if d.processing { ", processing" } else { "" })))
        }
    }
}

/// The condition of a domain the tier waits for: not processing a change and with its VPC
/// endpoint (DescribeDomain shows `Processing` true and no `Endpoints` while the domain is being
/// created or changed; OpenSearch API reference, "DomainStatus"); a domain being deleted ends the
/// wait at once; not visible yet is pending.
pub(crate) fn domain_ready(name: &str) -> impl Condition<DomainInfo, DatastoresError> + '_ {
    move |d: Option<&DomainInfo>| match d {
        None => Ok(Probe::Pending("not visible yet".to_owned())),
        Some(d) if d.deleted => Err(DatastoresError::Failed {
            kind: "OpenSearch domain",
            name: name.to_owned(),
            status: "being deleted".into(),
        }),
        Some(d) if d.processing => Ok(Probe::Pending("processing".to_owned())),
        Some(d) if d.vpc_endpoint.is_none() => Ok(Probe::Pending("waiting for the VPC endpoint".to_owned())),
        Some(_) => Ok(Probe::Done(())),
    }
}

#[async_trait]
impl Provisioner for OpenSearchProvisioner {
    type Spec = DatastoresSpec;
    type Observed = ObservedOpenSearch;
    type Output = OpenSearchOutput;
    type Error = DatastoresError;
    type Selector = StoreSelector;
    type Change = OpenSearchStep;

    fn validate(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<ObservedOpenSearch> {
        let (name, sgn) = (domain_name(ctx), crate::names::search_security_group(ctx));
        let mut o = ObservedOpenSearch::default();
        if let Some(sg) = self.sg.find(spec.vpc_id.clone(), sgn.clone()).await.at("DescribeSecurityGroups", &sgn)? {
            NotOwned::check(ctx, "security group", &sgn, &sg.tags)?;
            o.security_group = Some(sg);
        }
        if let Some(d) = self.search.describe(name.clone()).await.at("DescribeDomain", &name)? {
            NotOwned::check(ctx, "OpenSearch domain", &name, &d.tags)?;
            if let Step::Upgrade { .. } = upgrade::search_step(&d.engine_version, &spec.opensearch.engine_version) {
                let all = self.search.compatible_versions(name.clone()).await.at("GetCompatibleVersions", &name)?;
                let targets = all.into_iter().filter(|(source, _)| *source == d.engine_version).flat_map(|(_, t)| t);
                o.upgrade_targets = Some(targets.collect());
            }
            o.domain = Some(d);
            o.service_linked_role = true;
        } else {
            o.service_linked_role =
                self.search.service_linked_role_exists().await.at("GetRole", SERVICE_LINKED_ROLE)?;
        }
        o.secret = crate::secrets::secret_exists(ctx, self.secrets.as_ref(), SecretKind::OpenSearchMaster).await?;
        Ok(o)
    }

    fn changes(&self, ctx: &Context, spec: &DatastoresSpec, o: &ObservedOpenSearch) -> Vec<OpenSearchStep> {
        diff::changes(ctx, spec, o).into_iter().map(OpenSearchStep).collect()
    }

    /// A domain processing a change is waited for until it can take another.
    async fn settle(&self, ctx: &Context, _spec: &DatastoresSpec, o: ObservedOpenSearch) -> Result<ObservedOpenSearch> {
        self.settle_tier(ctx, o).await
    }

    /// A replacement is refused whatever the permissions: the domain holds the search index.
    /// So is an engine upgrade that cannot run.
    fn refusal(&self, _ctx: &Context, _spec: &DatastoresSpec, change: &OpenSearchStep) -> Option<DatastoresError> {
        Self::refusal_of(&change.0)
    }

    /// Executes the typed changes of one observation.
    async fn execute(
        &self,
        ctx: &Context,
        spec: &DatastoresSpec,
        o: ObservedOpenSearch,
        changes: Vec<OpenSearchStep>,
    ) -> Result<OpenSearchOutput> {
        self.execute_tier(ctx, spec, o, changes.into_iter().map(|c| c.0).collect()).await
    }

    /// Domain (wait gone) -> security group -> master secret. The index is derived data
    /// (Dify re-indexes from the database and storage), so no data-policy check applies.
    fn selector(&self, _ctx: &Context, spec: &DatastoresSpec) -> StoreSelector {
        StoreSelector { vpc_id: Some(spec.vpc_id.clone()) }
    }

    async fn destroy_selected(&self, ctx: &Context, selector: &StoreSelector) -> Result<Vec<ResourceRef>> {
        let policy = DataPolicy::from_context(ctx);
        let (name, sgn) = (domain_name(ctx), crate::names::search_security_group(ctx));
        let mut deleted = Vec::new();
        if let Some(d) =
            self.search.describe(name.clone()).await.at("DescribeDomain", &name)?.filter(|d| ctx.owns_tags(&d.tags))
        {
            if !d.deleted {
                dify_stack_core::ignore_not_found(self.search.delete(name.clone()).await).at("DeleteDomain", &name)?;
            }
            wait_for(ctx, format!("OpenSearch domain {name} to be deleted"), caps::OPENSEARCH, None, || async {
                Ok(self.search.describe(name.clone()).await.at("DescribeDomain", &name)?.map(|_| "deleting".to_owned()))
            })
            .await?;
            deleted.push(ResourceRef::new("opensearch:domain", &name).with_id(d.arn.as_str()));
        }
        // Without the VPC, no group in it.
        if let Some(vpc_id) = &selector.vpc_id
            && let Some(id) = security_group::delete(ctx, self.sg.as_ref(), vpc_id, &sgn).await?
        {
            deleted.push(ResourceRef::new("ec2:security-group", &sgn).with_id(id.into_inner()));
        }
        if let Some(arn) = delete_secret(ctx, self.secrets.as_ref(), SecretKind::OpenSearchMaster, policy).await? {
            deleted
                .push(ResourceRef::new("secretsmanager:secret", SecretKind::OpenSearchMaster.name(ctx)).with_id(arn));
        }
        Ok(deleted)
    }
}
