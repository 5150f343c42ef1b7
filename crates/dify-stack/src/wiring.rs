//! Pure functions from the configuration and upstream outputs to each tier's spec, and the
//! validation of the whole stack before any call.

use dify_stack_core::ids::{Arn, AvailabilityZone, BucketName, ClusterName, SecurityGroupId, SubnetId, VpcId};
use dify_stack_core::{Context, SpecErrors};
use dify_stack_datastores::{DatastoresSpec, PlacedSubnet};
use dify_stack_eks::{EksOutput, EksSpec, NodeSecurityGroupSpec};
use dify_stack_iam::IamSpec;
use dify_stack_network::{NetworkOutput, NetworkSpec, SubnetOutput};
use dify_stack_registry::{RegistryOutput, RegistrySpec};

use crate::config::StackConfig;

/// The context of a stack: name, environment, region (partition), tags, account.
pub fn context(cfg: &StackConfig, account_id: Option<&str>) -> Result<Context, SpecErrors> {
    let ctx = Context::new(cfg.name.as_str(), cfg.environment(), &cfg.region)?.with_tags(cfg.tags.clone())?;
    Ok(match account_id {
        Some(a) => ctx.with_account_id(a),
        None => ctx,
    })
}

/// The cluster's name: the EKS tier's (`dify_stack_eks::Names`), never assumed from the
/// configuration.
pub fn cluster_name(ctx: &Context) -> ClusterName {
    ClusterName::new(dify_stack_eks::Names::of(ctx).cluster)
}

/// Network tier spec.
pub fn network_spec(cfg: &StackConfig, ctx: &Context) -> NetworkSpec {
    NetworkSpec {
        cluster_name: cluster_name(ctx).to_string(),
        settings: cfg.network.clone(),
        node_instance_types: cfg.eks.node_group.instance_types.clone(),
    }
}

/// Node security group spec (needs the VPC).
pub fn node_sg_spec(net: &NetworkOutput) -> NodeSecurityGroupSpec {
    NodeSecurityGroupSpec { vpc_id: net.vpc_id.clone() }
}

/// EKS tier spec (needs the private subnets).
pub fn eks_spec(cfg: &StackConfig, net: &NetworkOutput) -> EksSpec {
    EksSpec {
        settings: cfg.eks.settings.clone(),
        vpc_id: net.vpc_id.clone(),
        private_subnet_ids: net.private_subnets.iter().map(|s| s.id.clone()).collect(),
        // The operators' addresses (`lock::Operators`, filled by `Stack::connect`).
        operator_cidrs: cfg.eks.operator_cidrs.clone(),
    }
}

/// Datastores spec (needs the private subnets and the node security group; nothing of the
/// cluster itself, so the stores do not wait for it).
pub fn datastores_spec(cfg: &StackConfig, net: &NetworkOutput, node_sg: &SecurityGroupId) -> DatastoresSpec {
    DatastoresSpec {
        settings: cfg.datastores.clone(),
        vpc_id: net.vpc_id.clone(),
        subnets: net
            .private_subnets
            .iter()
            .map(|s| PlacedSubnet { id: s.id.clone(), availability_zone: AvailabilityZone::new(&s.az) })
            .collect(),
        source_security_groups: vec![node_sg.clone()],
        allow_unprotected_prod: cfg.allow_unprotected_prod,
    }
}

/// Registry spec (needs nothing).
pub fn registry_spec(cfg: &StackConfig) -> RegistrySpec {
    cfg.registry.clone()
}

/// IAM spec (needs the OIDC issuer, the bucket name and the plugin repository ARN pattern; the
/// context gives the bucket key's ARN).
pub fn iam_spec(
    cfg: &StackConfig,
    ctx: &Context,
    eks: &EksOutput,
    bucket: &BucketName,
    registry: &RegistryOutput,
) -> IamSpec {
    IamSpec {
        cluster_name: ClusterName::new(eks.cluster_name.as_str()),
        oidc_issuer_url: eks.oidc_issuer_url.clone(),
        bucket: bucket.clone(),
        bucket_kms_key_arn: dify_stack_datastores::bucket::kms_key_arn(ctx, &cfg.datastores.bucket),
        plugin_repository_arn_pattern: Arn::new(&registry.plugin_repository_arn_pattern),
        // The section as given, except that no service account is made without a way to the
        // cluster's API (`eks.kubernetes_access = role_only`).
        settings: dify_stack_iam::IamSettings { service_accounts: creates_service_accounts(cfg), ..cfg.iam.clone() },
        addon_roles: addon_roles(cfg, ctx, eks.cluster_name.as_str()),
    }
}

/// The IRSA roles of the enabled platform add-ons, for the IAM tier.
pub fn addon_roles(cfg: &StackConfig, ctx: &Context, cluster: &str) -> Vec<dify_stack_iam::AddonRole> {
    let p = &cfg.platform;
    dify_stack_platform::addon_role_requests(
        ctx,
        cluster,
        p.load_balancer_controller.enabled,
        p.cluster_autoscaler.enabled,
    )
    .into_iter()
    .map(|r| dify_stack_iam::AddonRole {
        addon: r.addon.to_owned(),
        namespace: r.namespace.to_owned(),
        service_account: r.service_account.to_owned(),
        policy: r.policy,
    })
    .collect()
}

/// The add-on roles' ARNs before the IAM node has run (a plan, validation): IAM role ARNs are
/// `arn:<partition>:iam::<account>:role/<name>` (IAM user guide, "IAM identifiers": roles
/// made without a path), and the names are the IAM tier's. The context's account, or a
/// placeholder one where none is known (validation before any call).
pub fn planned_addon_role_arns(
    cfg: &StackConfig,
    ctx: &Context,
    cluster: &str,
) -> std::collections::BTreeMap<String, dify_stack_core::ids::RoleArn> {
    let account = ctx.account_id().unwrap_or("123456789012");
    addon_roles(cfg, ctx, cluster)
        .iter()
        .map(|r| {
            let arn = format!("arn:{}:iam::{account}:role/{}", ctx.partition().id(), r.role_name(cluster));
            (r.addon.clone(), dify_stack_core::ids::RoleArn::new(arn))
        })
        .collect()
}

/// The certificate spec: with a domain and no certificate of yours (`dify.certificate_arn`).
pub fn certificate_spec(cfg: &StackConfig) -> Option<dify_stack_platform::CertificateSpec> {
    let name = cfg.dify.domain.clone().filter(|_| cfg.dify.certificate_arn.is_none())?;
    Some(dify_stack_platform::CertificateSpec {
        domain: dify_stack_platform::DomainSpec { name, hosted_zone_id: cfg.dify.hosted_zone_id.clone() },
    })
}

/// Platform spec (needs the VPC, the cluster's name and Kubernetes version, from the EKS
/// output once it exists, and the add-ons' roles).
pub fn platform_spec(
    cfg: &StackConfig,
    net: &NetworkOutput,
    cluster: &ClusterName,
    kubernetes_version: dify_stack_core::ids::KubernetesVersion,
    roles: &std::collections::BTreeMap<String, dify_stack_core::ids::RoleArn>,
) -> dify_stack_platform::PlatformSpec {
    let p = &cfg.platform;
    dify_stack_platform::PlatformSpec {
        cluster_name: cluster.clone(),
        kubernetes_version,
        vpc_id: net.vpc_id.clone(),
        kubernetes: creates_service_accounts(cfg),
        load_balancer_controller: p.load_balancer_controller.chart(),
        cluster_autoscaler: p.cluster_autoscaler.chart().map(|mut chart| {
            if chart.version == crate::config::AUTO_VERSION {
                chart.version = dify_stack_platform::Chart::cluster_autoscaler_for(kubernetes_version).version;
            }
            chart
        }),
        metrics_server: p.metrics_server.chart(),
        roles: roles.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
    }
}

/// Whether apply creates the namespace and service accounts itself (`iam.service_accounts`,
/// unless `eks.kubernetes_access = role_only`).
pub fn creates_service_accounts(cfg: &StackConfig) -> bool {
    cfg.iam.service_accounts && cfg.eks.kubernetes_access.creates_kubernetes_objects()
}

/// A network output with placeholder ids in the planned AZs: lets every tier validate its
/// spec before anything exists.
pub fn planned_network(cfg: &StackConfig) -> NetworkOutput {
    let azs = cfg.az_count().max(1);
    let subnet = |role: &str, i: usize| SubnetOutput {
        id: SubnetId::new(format!("subnet-planned-{role}-{i}")),
        az: format!("{}{}", cfg.region, (b'a' + (i % 26) as u8) as char),
        cidr: String::new(),
    };
    NetworkOutput {
        vpc_id: VpcId::new("vpc-planned"),
        vpc_cidr: cfg.network.new.cidr.to_string(),
        public_subnets: (0..azs).map(|i| subnet("public", i)).collect(),
        private_subnets: (0..azs).map(|i| subnet("private", i)).collect(),
        nat_gateways: Vec::new(),
        public_route_table: None,
        private_route_tables: Vec::new(),
        owned: true,
    }
}

/// Validates the whole stack without any call: every violation at once, each path rooted at
/// the configuration (`eks.node_group.instance_types[0]`, `datastores.aurora.min_acu`, ...).
pub fn validate(cfg: &StackConfig) -> Result<(), SpecErrors> {
    let mut errs = SpecErrors::new();
    // Without a valid region or tags the tier checks below would only repeat it (the name is a
    // `StackName`, valid since it was read).
    let ctx = context(cfg, Some("123456789012"))?;
    // The network's and the cluster's settings are the configuration's sections: their paths
    // are the sections' (`network.new.cidr`, `eks.node_group.min`).
    if let Err(e) = network_spec(cfg, &ctx).validate(&ctx) {
        errs.extend_prefixed("network", e);
    }
    // Too few subnets are reported once, by the network check: the other tiers are checked on
    // the default network's.
    let net = match planned_network(cfg) {
        net if net.private_subnets.len() >= 2 => net,
        _ => planned_network(&StackConfig { network: Default::default(), ..cfg.clone() }),
    };
    let eks = eks_spec(cfg, &net);
    if let Err(e) = eks.validate(&ctx) {
        errs.extend_prefixed("eks", e);
    }
    match cfg.eks.kubernetes_access {
        crate::KubernetesAccess::PublicCidrs if cfg.eks.endpoint.public_access_cidrs.is_empty() => errs.push(
            "eks.endpoint.public_access_cidrs",
            "eks.kubernetes_access = public_cidrs opens the public endpoint to these CIDRs only, and none is given",
            "list the ranges apply runs from (office, VPN), or use kubernetes_access = caller_address",
        ),
        crate::KubernetesAccess::CallerAddress
            if !matches!(
                cfg.eks
                    .checkip_url
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|u| u.scheme_str().map(str::to_owned))
                    .as_deref(),
                Some("http" | "https")
            ) =>
        {
            errs.push(
                "eks.checkip_url",
                format!("{:?} is not an http(s) URL", cfg.eks.checkip_url),
                format!("use {}", crate::config::DEFAULT_CHECKIP_URL),
            )
        }
        _ => {}
    }
    let ds = datastores_spec(cfg, &net, &SecurityGroupId::new("sg-planned"));
    if let Err(e) = ds.validate(&ctx) {
        errs.extend_prefixed("datastores", e);
    }
    if let Err(e) = registry_spec(cfg).validate(&ctx) {
        errs.extend_prefixed("registry", e);
    }
    let iam = IamSpec {
        cluster_name: cluster_name(&ctx),
        oidc_issuer_url: format!("https://oidc.eks.{}.{}/id/PLANNED", cfg.region, ctx.partition().dns_suffix()),
        // Names from the tiers' own `names` (the context carries a placeholder account).
        bucket: BucketName::new(dify_stack_datastores::names::bucket(&ctx)),
        bucket_kms_key_arn: None,
        plugin_repository_arn_pattern: Arn::new(format!(
            "arn:{}:ecr:{}:123456789012:repository/{}*",
            ctx.partition().id(),
            ctx.region(),
            dify_stack_registry::names::plugin_repository(&ctx)
        )),
        settings: cfg.iam.clone(),
        addon_roles: addon_roles(cfg, &ctx, cluster_name(&ctx).as_str()),
    };
    if let Err(e) = iam.validate() {
        errs.extend_prefixed("iam", e);
    }
    // The platform, with the roles it will get (their ARNs are known after apply).
    let roles = planned_addon_role_arns(cfg, &ctx, cluster_name(&ctx).as_str());
    if let Err(e) =
        platform_spec(cfg, &planned_network(cfg), &cluster_name(&ctx), cfg.eks.kubernetes_version, &roles).validate()
    {
        errs.extend_prefixed("platform", e);
    }
    // The domain: checked even with your own certificate (the values file names its hosts), by
    // the platform's rules at this file's own paths.
    if let Some(name) = &cfg.dify.domain {
        dify_stack_platform::DomainSpec::check_name(name, "dify.domain", &mut errs);
    }
    if let Some(zone) = &cfg.dify.hosted_zone_id {
        dify_stack_platform::DomainSpec::check_hosted_zone_id(zone, "dify.hosted_zone_id", &mut errs);
    }
    if cfg.eks.operator_cidr_ttl_days == 0 {
        errs.push("eks.operator_cidr_ttl_days", "is 0: every other operator's address would be dropped", "e.g. 30");
    }
    // The chart and its images.
    cfg.dify.validate(&mut errs);
    // China regions reach neither the charts' repositories (github.io) nor their registries
    // (public.ecr.aws, registry.k8s.io; ECR Public is not offered in China: "Amazon ECR Public
    // is not available in China Regions", Getting Started with AWS in China): every enabled
    // chart needs a mirror for both, refused before any change.
    if ctx.partition() == dify_stack_core::Partition::AwsCn {
        for (name, addon) in [
            ("load_balancer_controller", &cfg.platform.load_balancer_controller),
            ("cluster_autoscaler", &cfg.platform.cluster_autoscaler),
            ("metrics_server", &cfg.platform.metrics_server),
        ] {
            if !addon.enabled {
                continue;
            }
            if addon.repository.contains(".github.io") {
                errs.push(
                    format!("platform.{name}.repository"),
                    format!("{} cannot be reached from China regions", addon.repository),
                    "set a chart mirror you run there (https:// or oci://, e.g. an ECR repository in the region), or enabled = false",
                );
            }
            if addon.image_repository.is_none() {
                errs.push(
                    format!("platform.{name}.image_repository"),
                    "the chart's image registry cannot be reached from China regions",
                    "set image_repository (and image_tag if the mirror's tag differs) to a mirror in the region, or enabled = false",
                );
            }
        }
    }
    errs.into_result()
}

/// The architecture of the node group's AMI type (validation refuses an unknown one, so
/// arm64, the profiles' Graviton, is only the fallback of an unvalidated configuration).
pub fn node_arch(cfg: &StackConfig) -> crate::chart::Arch {
    crate::chart::Arch::of_ami_type(&cfg.eks.node_group.ami_type).unwrap_or(crate::chart::Arch::Arm64)
}
