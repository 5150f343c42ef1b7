//! Golden files of the Dify EE values per profile and partition: the values rendered from a
//! stack output shaped as each partition's services name their endpoints (names from the tiers'
//! own naming functions), with every secret masked as `<its source>`. A change to the renderer shows as a diff of these files; run with
//! `DIFY_STACK_UPDATE_GOLDEN=1` to rewrite them after checking the diff.

mod contract;

use std::path::PathBuf;

use dify_stack::chart::{Arch, DifySettings};
use dify_stack::{Profile, StackOutput, ValuesSecrets, helm_values};
use dify_stack_core::Partition;
use dify_stack_core::ids::{Arn, BucketName, SecretArn, SecurityGroupId};
use dify_stack_datastores::{AuroraOutput, BucketOutput, OpenSearchOutput, RedisOutput, SecretKind, StoredSecret};
use secrecy::{ExposeSecret as _, SecretString};

const ACCOUNT: &str = "123456789012";

/// The outputs of a complete stack of `profile` in `region`, endpoints as the partition's services
/// name them.
fn output(profile: Profile, region: &str) -> (StackOutput, ValuesSecrets, DifySettings) {
    let cfg = profile.config().with_region(region);
    let partition = Partition::of_region(region).unwrap();
    let (stack, suffix) = (cfg.name.as_str(), partition.dns_suffix());
    let arn = |service: &str, resource: &str| partition.arn(service, region, ACCOUNT, resource);
    let secret = |name: &str| SecretArn::new(arn("secretsmanager", &format!("secret:{stack}/{name}-AbCdEf")));
    // The generator's own keys, each value masked by its key.
    let app: serde_json::Value = serde_json::from_str(SecretKind::DifyApp.generate("").expose_secret()).unwrap();
    let masked: serde_json::Map<_, _> =
        app.as_object().unwrap().keys().map(|k| (k.clone(), serde_json::json!(format!("<dify-app:{k}>")))).collect();
    let app_secret = |kind: SecretKind, value: String| {
        StoredSecret::new(format!("{stack}/{}", kind.suffix()), secret(kind.suffix()), SecretString::from(value))
    };
    let aurora = &cfg.datastores.aurora;
    let ctx = dify_stack::internals::wiring::context(&cfg, Some(ACCOUNT)).unwrap();
    let bucket = dify_stack_datastores::names::bucket(&ctx);
    let mut out = StackOutput {
        aurora: Some(AuroraOutput {
            cluster_id: stack.to_owned(),
            cluster_arn: Arn::new(arn("rds", &format!("cluster:{stack}"))),
            writer_endpoint: format!("{stack}.cluster-c0ffee.{region}.rds.{suffix}"),
            reader_endpoint: format!("{stack}.cluster-ro-c0ffee.{region}.rds.{suffix}"),
            port: 5432,
            master_secret_arn: None,
            master_username: aurora.master_username.clone(),
            security_group_id: SecurityGroupId::new("sg-aurora"),
            databases: aurora.databases.clone(),
            pending_statements: Vec::new(),
            app_username: aurora.app_username.clone(),
            app_secret: app_secret(SecretKind::AuroraApp, "<aurora-app>".into()),
        }),
        redis: Some(RedisOutput {
            replication_group_id: stack.to_owned(),
            arn: Arn::new(arn("elasticache", &format!("replicationgroup:{stack}"))),
            primary_endpoint: format!("master.{stack}.c0ffee.{region}.cache.{suffix}"),
            reader_endpoint: None,
            port: 6379,
            tls: true,
            auth_secret_arn: secret("redis-auth"),
            security_group_id: SecurityGroupId::new("sg-redis"),
        }),
        opensearch: Some(OpenSearchOutput {
            domain_name: stack.to_owned(),
            arn: Arn::new(arn("es", &format!("domain/{stack}"))),
            endpoint: format!("vpc-{stack}-c0ffee.{region}.es.{suffix}"),
            port: 443,
            master_secret_arn: secret("opensearch-master"),
            security_group_id: SecurityGroupId::new("sg-opensearch"),
        }),
        bucket: Some(BucketOutput {
            name: BucketName::new(&bucket),
            arn: Arn::new(format!("arn:{}:s3:::{bucket}", partition.id())),
            region: region.to_owned(),
        }),
        app_secret: Some(app_secret(SecretKind::DifyApp, serde_json::Value::Object(masked).to_string())),
        ..Default::default()
    };
    let plugin = format!("{stack}-ee-plugin-repo");
    let registry_host = format!("{ACCOUNT}.dkr.ecr.{region}.{suffix}");
    out.registry = Some(dify_stack_registry::RegistryOutput {
        app: dify_stack_registry::RepositoryOutput {
            name: format!("{stack}-ee"),
            arn: arn("ecr", &format!("repository/{stack}-ee")),
            uri: format!("{registry_host}/{stack}-ee"),
        },
        plugin: dify_stack_registry::RepositoryOutput {
            name: plugin.clone(),
            arn: arn("ecr", &format!("repository/{plugin}")),
            uri: format!("{registry_host}/{plugin}"),
        },
        plugin_repository_arn_pattern: arn("ecr", &format!("repository/{plugin}*")),
        plugin_image_repo_prefix: format!("{registry_host}/{plugin}"),
    });
    let secrets = ValuesSecrets {
        database_password: SecretString::from("<aurora-app:password>".to_owned()),
        redis_password: SecretString::from("<redis-auth>".to_owned()),
        opensearch_user: "<opensearch-master:username>".to_owned(),
        opensearch_password: SecretString::from("<opensearch-master:password>".to_owned()),
    };
    // The test profile without a domain (HTTP, no Ingress); prod behind the ALB with TLS.
    let domain = match profile {
        Profile::Prod => DifySettings {
            domain: Some("dify.example.com".into()),
            certificate_arn: Some(arn("acm", "certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")),
            ..cfg.dify.clone()
        },
        _ => cfg.dify.clone(),
    };
    (out, secrets, domain)
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden").join(name)
}

#[test]
fn values_match_the_golden_file_of_each_profile_and_partition() {
    let update = std::env::var_os("DIFY_STACK_UPDATE_GOLDEN").is_some();
    let mut differ = Vec::new();
    for (profile, region, file) in [
        (Profile::Test, "us-west-2", "values-test-aws.yaml"),
        (Profile::Prod, "us-west-2", "values-prod-aws.yaml"),
        (Profile::Test, "cn-northwest-1", "values-test-aws-cn.yaml"),
        (Profile::Prod, "cn-northwest-1", "values-prod-aws-cn.yaml"),
    ] {
        let (out, secrets, domain) = output(profile, region);
        // The profiles' node group is Graviton.
        let arch = Arch::of_ami_type(&profile.config().eks.node_group.ami_type).unwrap();
        assert_eq!(arch, Arch::Arm64);
        let values = helm_values(&out, &secrets, &domain, arch).unwrap();
        // Every key is one the chart reads, and every required one is there.
        contract::check_values_contract(&values, domain.domain.is_some(), true);
        assert!(values.contains("chart 3.9.1, arm64 nodes"), "{values}");
        assert!(values.contains(&format!("bucketName: {}-storage-{ACCOUNT}", profile.config().name)), "{values}");
        // Partition-specific names come from the partition, never a hard-coded `aws`.
        if region.starts_with("cn-") {
            assert!(!values.contains(".amazonaws.com\n") && !values.contains("arn:aws:"), "{file}:\n{values}");
            // Every Dify image and squid from Dify's China mirror; none from Docker Hub.
            let mirrored = values.matches(dify_stack::chart::CHINA_MIRROR).count();
            assert_eq!(mirrored, 15, "{values}");
            assert!(
                values.contains("repository: g-hsod9681-docker.pkg.coding.net/dify-artifact/dify/squid"),
                "{values}"
            );
        } else {
            assert!(!values.contains("repository:"), "Docker Hub's images need no repository key:\n{values}");
        }
        if update {
            std::fs::write(golden(file), &values).unwrap();
        } else if std::fs::read_to_string(golden(file)).ok().as_deref() != Some(values.as_str()) {
            differ.push(format!("--- {file} (rendered now):\n{values}"));
        }
    }
    assert!(
        differ.is_empty(),
        "values differ from the golden files (DIFY_STACK_UPDATE_GOLDEN=1 rewrites them):\n{}",
        differ.join("\n")
    );
}

#[test]
fn a_generated_key_missing_from_its_secret_is_an_error_naming_it_never_an_empty_value() {
    let (mut out, secrets, domain) = output(Profile::Test, "us-west-2");
    let app = out.app_secret.as_ref().unwrap();
    let mut value: serde_json::Value = serde_json::from_str(app.value().expose_secret()).unwrap();
    value.as_object_mut().unwrap().remove("password_encryption_key");
    out.app_secret = Some(StoredSecret::new(app.name.clone(), app.arn.clone(), SecretString::from(value.to_string())));
    let err = helm_values(&out, &secrets, &domain, Arch::Arm64).unwrap_err();
    assert!(
        matches!(&err, dify_stack::output::ValuesError::MissingSecret { key: "password_encryption_key", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("dify-test/dify-app"), "{err}");
}

#[test]
fn every_key_we_set_is_in_the_chart_tree_and_x86_nodes_get_the_plain_tags() {
    let outside: Vec<&str> =
        contract::keys_we_set().into_iter().map(|(k, _)| k).filter(|k| !contract::in_chart(k)).collect();
    assert!(outside.is_empty(), "keys dify-stack sets that the chart 3.9.1 does not have: {outside:?}");
    // The tree is not a wildcard for everything: the keys earlier versions rendered are outside.
    for gone in [
        "api.innerApi.apiKey",
        "enterprise.innerApi.apiKey",
        "sandbox.apiKey",
        "plugin_daemon.apiKey",
        "plugin_connector.apiKey",
    ] {
        assert!(!contract::in_chart(gone), "{gone}");
    }
    let (out, secrets, domain) = output(Profile::Test, "us-west-2");
    let values = helm_values(&out, &secrets, &domain, Arch::Amd64).unwrap();
    contract::check_values_contract(&values, false, false);
    assert!(values.contains("No [dify] domain"), "{values}");
}

#[test]
fn the_ingress_keeps_long_streams_open() {
    let (out, secrets, mut domain) = output(Profile::Prod, "us-west-2");
    let values = helm_values(&out, &secrets, &domain, Arch::Arm64).unwrap();
    assert!(values.contains("load-balancer-attributes: idle_timeout.timeout_seconds=600"), "{values}");
    domain.idle_timeout_secs = 1800;
    let values = helm_values(&out, &secrets, &domain, Arch::Arm64).unwrap();
    assert!(values.contains("idle_timeout.timeout_seconds=1800"), "{values}");
}
