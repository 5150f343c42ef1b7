//! Apply: executes OpenSearch's typed changes of one observation.

use dify_stack_core::{AwsAt, Context, Planned, from_aws_wait, wait};

use super::diff::{OpenSearchChange, sg_want};
use super::{
    ObservedOpenSearch, OpenSearchOutput, OpenSearchProvisioner, PORT, domain_name, is_missing_service_linked_role,
};
use crate::common::{DatastoresError, Result, caps};
use crate::secrets::{SecretKind, ensure_secret};
use crate::security_group;
use crate::spec::DatastoresSpec;

impl OpenSearchProvisioner {
    /// Whether the domain is processing a change ([`Self::settle_tier`] waits for it).
    pub(crate) fn domain_processing(o: &ObservedOpenSearch) -> bool {
        o.domain.as_ref().is_some_and(|d| d.processing)
    }

    /// The trait's `settle`: a domain processing a change cannot take another
    /// (UpdateDomainConfig is refused with a ValidationException while a change is in
    /// progress): waited for first, then compared. Source: terraform-provider-aws #38136
    /// ("ValidationException: A change/update is in progress. Please wait for it to complete
    /// before requesting another change.").
    pub(super) async fn settle_tier(&self, ctx: &Context, mut o: ObservedOpenSearch) -> Result<ObservedOpenSearch> {
        if Self::domain_processing(&o) {
            o.domain = Some(self.wait_ready(ctx, &domain_name(ctx)).await?);
        }
        Ok(o)
    }

    /// The trait's `refusal`: a replacement, whatever the permissions (the domain holds the
    /// search index), or an engine upgrade that cannot run.
    pub(super) fn refusal_of(change: &OpenSearchChange) -> Option<DatastoresError> {
        match change {
            OpenSearchChange::Replace { .. } => Some(crate::common::immutable_change(&change.change())),
            c => c.refusal(),
        }
    }

    /// The trait's `execute`: the typed changes of one (settled) observation, in order. The
    /// security group's id, known after its change, goes into the domain's create; the domain
    /// as it ends is read by the waits here, not observed again.
    pub(super) async fn execute_tier(
        &self,
        ctx: &Context,
        spec: &DatastoresSpec,
        o: ObservedOpenSearch,
        changes: Vec<OpenSearchChange>,
    ) -> Result<OpenSearchOutput> {
        let (name, sgn) = (domain_name(ctx), crate::names::search_security_group(ctx));
        // The secret (read, or generated when the plan shows it: `OpenSearchChange::Secret`), the
        // security group and the service-linked role need nothing of each other: made together,
        // and the domain as soon as all are there.
        let secret =
            ensure_secret(ctx, self.secrets.as_ref(), SecretKind::OpenSearchMaster, &spec.opensearch.master_user);
        let sources = security_group::sources(spec);
        let sg_change = changes.iter().find_map(|c| match c {
            OpenSearchChange::SecurityGroup(c) => Some(c.clone()),
            _ => None,
        });
        let want_sg = sg_want(spec, &sgn, &sources);
        let sg = security_group::apply_change(ctx, self.sg.as_ref(), want_sg, sg_change, o.security_group.as_ref());
        let linked_role = async {
            if changes.iter().any(|c| matches!(c, OpenSearchChange::ServiceLinkedRole)) {
                self.ensure_service_linked_role().await?;
            }
            Ok::<_, DatastoresError>(())
        };
        let (secret, sg, ()) = tokio::try_join!(secret, sg, linked_role)?;
        let mut config = Self::config_for(ctx, spec, sg.as_str());
        // The domain as last seen, when it is ready and nothing changed (no further read).
        let mut settled = o.domain.clone().filter(|d| d.vpc_endpoint.is_some());
        for change in changes {
            match change {
                OpenSearchChange::Secret { .. }
                | OpenSearchChange::SecurityGroup(_)
                | OpenSearchChange::Replace { .. } => {}
                // Made above, with the secret and the security group.
                OpenSearchChange::ServiceLinkedRole => {}
                OpenSearchChange::Create { .. } => {
                    let user = secret
                        .field("username")
                        .map(|u| secrecy::ExposeSecret::expose_secret(&u).to_owned())
                        .unwrap_or_else(|| spec.opensearch.master_user.clone());
                    let password = secret.field("password").unwrap_or_else(|| secret.value().clone());
                    config.master = Some((user, password));
                    let policy = ctx.wait.capped(caps::SERVICE_LINKED_ROLE_PROPAGATION);
                    let created = wait::retry(
                        &format!("CreateDomain {name}"),
                        &policy,
                        ctx.cancellation(),
                        is_missing_service_linked_role,
                        || self.search.create(config.clone()),
                    )
                    .await;
                    match created {
                        Ok(_) => tracing::info!(domain = %name, "creating OpenSearch domain"),
                        Err(wait::WaitError::Failed { source, .. }) if source.is_already_exists() => {}
                        Err(e) => return Err(from_aws_wait::<DatastoresError>(e, "CreateDomain", &name)),
                    }
                    settled = None;
                }
                OpenSearchChange::Upgrade { have, want, .. } => {
                    self.search.upgrade_domain(name.clone(), want.clone()).await.at("UpgradeDomain", &name)?;
                    tracing::info!(domain = %name, from = %have, to = %want, "upgrading OpenSearch (blue/green)");
                    settled = Some(self.wait_upgraded(ctx, &name, &want).await?).filter(|d| d.vpc_endpoint.is_some());
                }
                OpenSearchChange::Update { arn, settings, tags, .. } => {
                    if !settings.is_empty() {
                        self.search.update(config.clone()).await.at("UpdateDomainConfig", &name)?;
                        settled = None;
                    }
                    if !tags.is_empty() {
                        let tags = dify_stack_core::drift_tags(&tags);
                        self.search.tag(arn, tags).await.at("AddTags", &name)?;
                    }
                }
            }
        }
        let d = match settled {
            Some(d) => d,
            None => self.wait_ready(ctx, &name).await?,
        };
        Ok(OpenSearchOutput {
            domain_name: name,
            arn: d.arn.clone(),
            endpoint: d.vpc_endpoint.clone().unwrap_or_default(),
            port: PORT,
            master_secret_arn: secret.arn.clone(),
            security_group_id: sg,
        })
    }
}
