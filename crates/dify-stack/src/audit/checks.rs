//! The report from the tiers' audits: each tier reads its resources through its own clients and
//! judges them with its own pure functions; the facade only runs them, tells the network tier
//! which security groups play which part, and puts the verdicts in [`CONTROLS`] order.

use super::{AuditReport, CONTROLS, Finding, Verdict};

use dify_stack_core::{AwsError, Context};

use crate::StackConfig;

/// Audits the stack of `ctx` (with account id) through `sdk`; `cfg` says which platform add-ons
/// have a role to audit.
pub async fn audit(ctx: &Context, sdk: &aws_types::SdkConfig, cfg: &StackConfig) -> Result<AuditReport, AwsError> {
    let mut verdicts: Vec<(&'static str, Verdict)> = Vec::new();

    // The datastores tier's controls (S3, RDS, ElastiCache, OpenSearch), read through its own
    // clients and checked by its own pure functions.
    let stores = dify_stack_datastores::SdkDatastores::from_conf(sdk);
    verdicts.extend(dify_stack_datastores::audit::audit(ctx, &stores).await?);

    // The EKS tier's controls, read through its own clients.
    let cluster = dify_stack_eks::audit::audit(ctx, &dify_stack_eks::SdkEks::from_conf(sdk)).await?;
    verdicts.extend(cluster.verdicts);
    let issuer = cluster.oidc_issuer.clone();

    // The registry and IAM tiers' controls, read through their own clients.
    verdicts.extend(dify_stack_registry::audit::audit(ctx, &dify_stack_registry::SdkEcr::from_conf(sdk)).await?);
    let iam = dify_stack_iam::SdkIam::from_conf(sdk);
    verdicts.extend(dify_stack_iam::audit::audit(ctx, issuer.as_deref(), &iam).await?);

    // The platform tier's controls over its add-ons' roles, which the IAM tier makes: read
    // through the IAM tier's client, judged by the platform tier. (Boxed: debug builds poll deep
    // future nests with large frames.)
    verdicts.extend(Box::pin(platform(ctx, cfg, &iam, issuer.as_deref())).await?);

    // The security groups across the tiers, read through the network tier's EC2 client: which
    // group plays which part comes from the tiers' names.
    let roles = dify_stack_network::audit::GroupRoles {
        cluster_group_ids: cluster.cluster_security_group.into_iter().collect(),
        node_group_name: dify_stack_eks::Names::of(ctx).node_security_group,
        stores: vec![
            (dify_stack_datastores::names::AuroraNames::of(ctx).security_group, dify_stack_datastores::aurora::PORT),
            (dify_stack_datastores::names::redis(ctx), dify_stack_datastores::redis::PORT),
            (dify_stack_datastores::names::search_security_group(ctx), dify_stack_datastores::opensearch::PORT),
        ],
    };
    let ec2 = dify_stack_network::SdkEc2::from_conf(sdk);
    verdicts.extend(dify_stack_network::audit::audit(ctx, &ec2, &roles).await?);

    let findings = CONTROLS
        .iter()
        .map(|c| Finding {
            control: *c,
            verdict: verdicts
                .iter()
                .find(|(id, _)| *id == c.id)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| Verdict::Fail("not checked".to_owned())),
        })
        .collect();
    Ok(AuditReport { findings })
}

/// PLT.1-2: the platform's add-on roles of `cfg`, read through the IAM tier's client.
async fn platform(
    ctx: &Context,
    cfg: &StackConfig,
    iam: &dify_stack_iam::SdkIam,
    issuer: Option<&str>,
) -> Result<Vec<(&'static str, Verdict)>, AwsError> {
    let cluster_name = dify_stack_eks::Names::of(ctx).cluster;
    let p = &cfg.platform;
    let requests = dify_stack_platform::addon_role_requests(
        ctx,
        &cluster_name,
        p.load_balancer_controller.enabled,
        p.cluster_autoscaler.enabled,
    );
    // The IAM tier's view of the same roles, in the same order: it names them.
    let mut addon_roles = Vec::new();
    for (request, role) in requests.into_iter().zip(crate::wiring::addon_roles(cfg, ctx, &cluster_name)) {
        let read = dify_stack_iam::audit::read_role(iam, role.role_name(&cluster_name)).await?.map(|r| {
            dify_stack_platform::audit::AddonRoleRead { name: r.role.name, trust: r.role.trust, policies: r.policies }
        });
        addon_roles.push((request, read));
    }
    Ok(dify_stack_platform::audit::addon_roles(&addon_roles, issuer))
}
