//! Profiles, configuration files, validation, wiring and the graph executor (with mocked tier
//! runners on tokio's paused clock).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dify_stack_core::ids::{SecurityGroupId, SubnetId, VpcId};
use dify_stack_core::{CancellationToken, ResourceRef};

use crate::config::{ConfigError, Profile, StackConfig};
use crate::graph::{self, Event, EventSink, MockTierRunner, Node, NodeError, NodeOutput};
use crate::wiring;

mod account;
mod runs;

#[test]
fn profiles_resolve_to_the_stack_md_values() {
    let t = Profile::Test.config();
    assert_eq!((t.name.as_str(), t.region.as_str()), ("dify-test", "us-west-2"));
    assert_eq!(t.network.new.az_count, 2);
    assert_eq!(t.network.new.cidr.to_string(), "10.0.0.0/16");
    assert_eq!(t.eks.kubernetes_version.to_string(), "1.33");
    assert_eq!(
        (t.eks.node_group.instance_types[0].as_str(), t.eks.node_group.min, t.eks.node_group.max),
        ("m7g.xlarge", 1, 2)
    );
    assert_eq!(t.eks.node_group.ami_type, "AL2023_ARM_64_STANDARD");
    assert_eq!(t.eks.log_types.len(), 5);
    assert_eq!(t.eks.addons.len(), 5);
    assert_eq!(
        (t.datastores.aurora.min_acu, t.datastores.aurora.max_acu, t.datastores.aurora.instances),
        (0.5, 4.0, 1)
    );
    assert_eq!(t.datastores.redis.node_type, "cache.t4g.micro");
    assert_eq!(t.datastores.opensearch.instance_count, 1);
    assert_eq!(t.registry.app.keep_last, 10);
    assert_eq!(t.registry.plugin.keep_last, 20);
    assert_eq!(t.iam.namespace, "dify");
    let p = Profile::Prod.config();
    assert_eq!((p.name.as_str(), p.network.new.az_count), ("dify-prod", 3));
    assert_eq!(
        (p.eks.node_group.instance_types[0].as_str(), p.eks.node_group.desired, p.eks.node_group.max),
        ("m7g.2xlarge", 6, 10)
    );
    assert_eq!(
        (p.datastores.aurora.min_acu, p.datastores.aurora.max_acu, p.datastores.aurora.instances),
        (1.0, 8.0, 2)
    );
    assert!(p.datastores.aurora.deletion_protection);
    assert_eq!((p.datastores.redis.nodes, p.datastores.redis.multi_az), (2, true));
    assert_eq!((p.datastores.opensearch.instance_count, p.datastores.opensearch.zone_awareness), (3, true));
    wiring::validate(&t).unwrap();
    wiring::validate(&p).unwrap();
}

/// The full resolved configuration of each profile, as committed in `profiles/*.json`. A
/// change to a default shows up here and must be deliberate.
#[test]
fn profile_snapshots_match() {
    for (profile, file) in [(Profile::Test, "test.json"), (Profile::Prod, "prod.json")] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles").join(file);
        let resolved = serde_json::to_value(profile.config()).unwrap();
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, serde_json::to_string_pretty(&resolved).unwrap() + "\n").unwrap();
        }
        let committed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            resolved,
            committed,
            "profile {profile:?} differs from {}; run with UPDATE_SNAPSHOTS=1 if deliberate",
            path.display()
        );
    }
}

#[test]
fn the_example_config_files_parse_and_override_the_profile() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config");
    let test = StackConfig::from_file(dir.join("test.toml")).unwrap();
    assert_eq!(test.profile, Profile::Test);
    assert_eq!(test.network.new.nat, dify_stack_network::NatMode::Single);
    assert_eq!(test.tags.get("team").map(String::as_str), Some("platform"));
    wiring::validate(&test).unwrap();
    let prod = StackConfig::from_file(dir.join("prod.yaml")).unwrap();
    assert_eq!(prod.profile, Profile::Prod);
    assert_eq!(prod.eks.endpoint.public_access_cidrs, ["203.0.113.0/24"]);
    assert_eq!(prod.datastores.aurora.max_acu, 16.0);
    // Untouched fields keep the prod values.
    assert_eq!(prod.eks.node_group.desired, 6);
    wiring::validate(&prod).unwrap();
}

#[test]
fn files_override_any_field_and_reject_unknown_ones_with_their_path() {
    let c = StackConfig::from_str_with_format(
        "profile = \"prod\"\nname = \"acme\"\n[datastores.redis]\nnode_type = \"cache.r7g.large\"\n",
        false,
    )
    .unwrap();
    assert_eq!(
        (c.name.as_str(), c.datastores.redis.node_type.as_str(), c.datastores.redis.nodes),
        ("acme", "cache.r7g.large", 2)
    );
    let c = StackConfig::from_str_with_format("eks:\n  node_group:\n    max: 3\n", true).unwrap();
    assert_eq!((c.profile, c.eks.node_group.max, c.eks.node_group.min), (Profile::Test, 3, 1));
    // Every error names the full path of the field to fix.
    let field = |text: &str, yaml: bool| match StackConfig::from_str_with_format(text, yaml).unwrap_err() {
        ConfigError::Field { field, message } => (field, message),
        other => panic!("{text}: {other:?}"),
    };
    let (f, m) = field("[eks]\nnode_grup = 1\n", false);
    assert!(f == "eks.node_grup" && m.contains("unknown field `node_grup`"), "{f}: {m}");
    assert_eq!(field("colour = \"blue\"\n", false).0, "colour");
    assert_eq!(field("[datastores.aurora]\nmin_acu = \"lots\"\n", false).0, "datastores.aurora.min_acu");
    assert_eq!(field("eks:\n  node_group:\n    max: many\n", true).0, "eks.node_group.max");
    assert_eq!(field("[eks]\nlog_types = [\"api\", 3]\n", false).0, "eks.log_types[1]");
    // The Kubernetes version is parsed once, where it enters: a malformed one is refused with its
    // path and the form to use, before any validation.
    let (f, m) = field("[eks]\nkubernetes_version = \"latest\"\n", false);
    assert!(f == "eks.kubernetes_version" && m.contains("use the form \"1.33\""), "{f}: {m}");
    // So is the stack name: a bad one is refused when the file is read, at `name`, and by
    // `with_name`; a valid configuration cannot hold one.
    for (bad, why) in [
        ("ab", "3-20 characters"),
        ("Dify", "lowercase letter"),
        ("dify-", "may not end with '-'"),
        ("a-very-long-stack-name-x", "3-20 characters"),
        ("dify_x", "only a-z, 0-9 and '-'"),
    ] {
        let (f, m) = field(&format!("name = \"{bad}\"\n"), false);
        assert!(f == "name" && m.contains(why), "{bad}: {f}: {m}");
        let err = StackConfig::profile(Profile::Test).with_name(bad).unwrap_err();
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
    assert!(matches!(
        StackConfig::from_str_with_format("profile = \"staging\"\n", false),
        Err(ConfigError::UnknownProfile { value }) if value == "staging"
    ));
    assert!(matches!(
        StackConfig::from_str_with_format("name = [\n", false),
        Err(ConfigError::Syntax { format: "TOML", .. })
    ));
    assert!(matches!(
        StackConfig::from_str_with_format("eks: [1, 2\n", true),
        Err(ConfigError::Syntax { format: "YAML", .. })
    ));
    assert!(matches!(StackConfig::from_str_with_format("- 1\n", true), Err(ConfigError::NotATable)));
    assert!(matches!("staging".parse::<Profile>(), Err(ConfigError::UnknownProfile { .. })));
    // One platform add-on off, another from a mirror; the rest keep the profile's.
    let c = StackConfig::from_str_with_format(
        "[platform.cluster_autoscaler]\nenabled = false\n[platform.load_balancer_controller]\nrepository = \"https://mirror.example.cn/eks-charts\"\nimage_repository = \"mirror.example.cn/lbc\"\n",
        false,
    )
    .unwrap();
    assert!(c.platform.cluster_autoscaler.chart().is_none());
    let lbc = c.platform.load_balancer_controller.chart().unwrap();
    assert_eq!((lbc.repository.as_str(), lbc.version.as_str()), ("https://mirror.example.cn/eks-charts", "1.13.0"));
    assert_eq!(lbc.image_repository.as_deref(), Some("mirror.example.cn/lbc"));
    assert!(c.platform.metrics_server.chart().is_some());
    let (f, m) = field("[platform.metrics_server]\nenable = false\n", false);
    assert!(f == "platform.metrics_server.enable" && m.contains("unknown field"), "{f}: {m}");
}

/// Each bad configuration is reported with the path of the field to fix.
#[test]
fn validation_catalogue_reports_every_path() {
    type Edit = fn(&mut StackConfig);
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("unknown region", |c| c.region = "mars-east-1".into(), "region"),
        ("bad domain", |c| c.dify.domain = Some("Dify_Example".into()), "dify.domain"),
        (
            "hosted zone id with its prefix",
            |c| {
                c.dify.domain = Some("dify.example.com".into());
                c.dify.hosted_zone_id = Some("/hostedzone/Z123".into());
            },
            "dify.hosted_zone_id",
        ),
        (
            "plain-http chart repository",
            |c| c.platform.load_balancer_controller.repository = "http://charts.example.com".into(),
            "platform.load_balancer_controller.repository",
        ),
        ("reserved tag", |c| drop(c.tags.insert("dify-stack:stack".into(), "x".into())), "tags.dify-stack:stack"),
        ("one AZ", |c| c.network.new.az_count = 1, "network.new.az_count"),
        ("tiny VPC", |c| c.network.new.cidr = "10.0.0.0/28".parse().unwrap(), "network.new.public_subnets"),
        (
            "x86 on ARM AMI",
            |c| c.eks.node_group.instance_types = vec!["m7i.xlarge".into()],
            "eks.node_group.instance_types[0]",
        ),
        (
            "ARM on x86 AMI",
            |c| c.eks.node_group.ami_type = "AL2023_x86_64_STANDARD".into(),
            "eks.node_group.instance_types[0]",
        ),
        ("unknown AMI", |c| c.eks.node_group.ami_type = "WINDOWS".into(), "eks.node_group.ami_type"),
        ("min > desired", |c| c.eks.node_group.min = 2, "eks.node_group.desired"),
        ("desired > max", |c| c.eks.node_group.desired = 5, "eks.node_group.desired"),
        ("no instance types", |c| c.eks.node_group.instance_types.clear(), "eks.node_group.instance_types"),
        ("tiny disk", |c| c.eks.node_group.disk_size_gib = 4, "eks.node_group.disk_size_gib"),
        (
            "open endpoint",
            |c| c.eks.endpoint.public_access_cidrs = vec!["0.0.0.0/0".into()],
            "eks.endpoint.public_access_cidrs[0]",
        ),
        (
            "bad CIDR",
            |c| c.eks.endpoint.public_access_cidrs = vec!["office".into()],
            "eks.endpoint.public_access_cidrs[0]",
        ),
        (
            "public_cidrs without CIDRs",
            |c| c.eks.kubernetes_access = crate::KubernetesAccess::PublicCidrs,
            "eks.endpoint.public_access_cidrs",
        ),
        ("checkip not a URL", |c| c.eks.checkip_url = "checkip".into(), "eks.checkip_url"),
        ("log retention", |c| c.eks.log_retention_days = 10, "eks.log_retention_days"),
        (
            "bucket key alias",
            |c| c.datastores.bucket.kms_key_id = Some("alias/s3".into()),
            "datastores.bucket.kms_key_id",
        ),
        ("EBS CSI without Pod Identity", |c| c.eks.addons.retain(|a| a != "eks-pod-identity-agent"), "eks.addons"),
        (
            "app user is master",
            |c| c.datastores.aurora.app_username = "dify_admin".into(),
            "datastores.aurora.app_username",
        ),
        ("unknown log type", |c| c.eks.log_types.push("everything".into()), "eks.log_types[5]"),
        ("bad admin", |c| c.eks.admin_principals = vec!["bob".into()], "eks.admin_principals[0]"),
        ("ACU step", |c| c.datastores.aurora.min_acu = 0.7, "datastores.aurora.min_acu"),
        ("ACU too big", |c| c.datastores.aurora.max_acu = 512.0, "datastores.aurora.max_acu"),
        ("ACU min > max", |c| c.datastores.aurora.min_acu = 8.0, "datastores.aurora.min_acu"),
        ("no instances", |c| c.datastores.aurora.instances = 0, "datastores.aurora.instances"),
        ("backups off", |c| c.datastores.aurora.backup_retention_days = 0, "datastores.aurora.backup_retention_days"),
        ("bad engine", |c| c.datastores.aurora.engine_version = "seventeen".into(), "datastores.aurora.engine_version"),
        ("bad db name", |c| c.datastores.aurora.databases.push("my-db".into()), "datastores.aurora.databases[4]"),
        (
            "postgres master",
            |c| c.datastores.aurora.master_username = "postgres".into(),
            "datastores.aurora.master_username",
        ),
        ("redis multi-AZ on 1 node", |c| c.datastores.redis.multi_az = true, "datastores.redis.multi_az"),
        ("redis node type", |c| c.datastores.redis.node_type = "t4g.micro".into(), "datastores.redis.node_type"),
        ("redis nodes", |c| c.datastores.redis.nodes = 9, "datastores.redis.nodes"),
        (
            "opensearch type",
            |c| c.datastores.opensearch.instance_type = "m6g.large".into(),
            "datastores.opensearch.instance_type",
        ),
        (
            "opensearch 3 zone-aware nodes on 2 AZs",
            |c| {
                c.datastores.opensearch.instance_count = 3;
                c.datastores.opensearch.zone_awareness = true;
            },
            "datastores.opensearch.zone_awareness",
        ),
        ("opensearch volume", |c| c.datastores.opensearch.volume_gib = 1, "datastores.opensearch.volume_gib"),
        ("registry keep 0", |c| c.registry.app.keep_last = 0, "registry.app.keep_last"),
        ("iam namespace", |c| c.iam.namespace = "Dify_NS".into(), "iam.namespace"),
        ("iam thumbprint", |c| c.iam.thumbprints = vec!["abc".into()], "iam.thumbprints[0]"),
    ];
    assert!(cases.len() >= 30);
    for (what, edit, path) in cases {
        let mut c = Profile::Test.config();
        edit(&mut c);
        let errs = wiring::validate(&c).expect_err(what);
        assert!(errs.paths().contains(&path), "{what}: expected {path} in {:?}\n{errs}", errs.paths());
        for e in errs.errors() {
            assert!(e.hint.as_deref().is_some_and(|h| !h.is_empty()) || !e.message.is_empty(), "{what}: {e:?}");
        }
    }
    // Prod without deletion protection needs the explicit override.
    let mut c = Profile::Prod.config();
    c.datastores.aurora.deletion_protection = false;
    assert_eq!(wiring::validate(&c).unwrap_err().paths(), ["datastores.aurora.deletion_protection"]);
    c.allow_unprotected_prod = true;
    wiring::validate(&c).unwrap();
    // Without a final snapshot too: one violation (the datastores tier checks the permission,
    // the facade only passes it on), lifted by the same permission.
    c.datastores.aurora.final_snapshot = false;
    wiring::validate(&c).unwrap();
    c.allow_unprotected_prod = false;
    let errs = wiring::validate(&c).unwrap_err();
    assert_eq!(errs.paths(), ["datastores.aurora.deletion_protection"]);
    assert!(errs.to_string().contains("allow_unprotected_prod"), "{errs}");
    // Several problems are reported together.
    let mut c = Profile::Test.config();
    c.eks.node_group.min = 5;
    c.datastores.aurora.max_acu = 0.0;
    c.iam.namespace = String::new();
    assert!(wiring::validate(&c).unwrap_err().len() >= 3);
}

/// The `network` and `eks` sections are the tiers' own settings: a file's bad value is reported
/// at the file's path, which is the tier's path below the section (nothing is rewritten).
#[test]
fn sections_are_the_tiers_settings_and_report_the_files_paths() {
    let paths = |text: &str, yaml: bool| {
        let cfg = StackConfig::from_str_with_format(text, yaml).unwrap();
        let errs = cfg.validate().unwrap_err();
        errs.paths().into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(paths("[network.new]\ncidr = \"10.0.0.1/16\"\n", false), ["network.new.cidr"]);
    assert_eq!(paths("network:\n  new:\n    az_count: 7\n", true), ["network.new.az_count"]);
    let existing = "[network.existing]\nvpc_id = \"sg-1\"\nprivate_subnet_ids = [\"subnet-1\", \"subnet-2\"]\n";
    assert_eq!(paths(existing, false), ["network.existing.vpc_id"]);
    let existing = "[network.existing]\nvpc_id = \"vpc-1\"\nprivate_subnet_ids = [\"subnet-1\", \"vpc-2\"]\n";
    assert_eq!(paths(existing, false), ["network.existing.private_subnet_ids[1]"]);
    // With an existing VPC, the new one's settings are not checked.
    let both = "[network.new]\naz_count = 9\n[network.existing]\nvpc_id = \"vpc-1\"\nprivate_subnet_ids = [\"subnet-1\", \"subnet-2\"]\n";
    StackConfig::from_str_with_format(both, false).unwrap().validate().unwrap();
    assert_eq!(
        paths("[eks.node_group]\ninstance_types = [\"m7i.xlarge\"]\nmin = 3\n", false),
        ["eks.node_group.instance_types[0]", "eks.node_group.desired"]
    );
    assert_eq!(paths("eks:\n  log_retention_days: 10\n", true), ["eks.log_retention_days"]);
    assert_eq!(paths("[datastores.aurora]\nmin_acu = 0.7\n", false), ["datastores.aurora.min_acu"]);
    assert_eq!(paths("datastores:\n  redis:\n    nodes: 9\n", true), ["datastores.redis.nodes"]);
    assert_eq!(paths("[iam]\nnamespace = \"Dify_NS\"\n", false), ["iam.namespace"]);
    // Too few subnets are the network's to report, once: the other tiers are checked on the
    // default network's.
    assert_eq!(paths("[network.new]\naz_count = 1\n", false), ["network.new.az_count"]);
    let one_subnet = "[network.existing]\nvpc_id = \"vpc-1\"\nprivate_subnet_ids = [\"subnet-1\"]\n";
    assert_eq!(paths(one_subnet, false), ["network.existing.private_subnet_ids"]);
    // The facade's own keys of the section sit beside the settings' and keep their paths.
    let cfg = StackConfig::from_str_with_format(
        "[eks]\nkubernetes_access = \"public_cidrs\"\nlog_retention_days = 14\noperator_cidr_ttl_days = 7\nremove_operator_cidrs = [\"203.0.113.7\"]\n[eks.endpoint]\npublic_access_cidrs = [\"198.51.100.0/24\"]\n[eks.node_group]\nmax = 4\n",
        false,
    )
    .unwrap();
    assert_eq!(cfg.eks.kubernetes_access, crate::KubernetesAccess::PublicCidrs);
    assert_eq!(
        (cfg.eks.operator_cidr_ttl_days, cfg.eks.remove_operator_cidrs.as_slice()),
        (7, &["203.0.113.7".to_owned()][..])
    );
    assert_eq!((cfg.eks.settings.log_retention_days, cfg.eks.node_group.max, cfg.eks.node_group.min), (14, 4, 1));
    assert_eq!(cfg.eks.checkip_url, crate::config::DEFAULT_CHECKIP_URL);
    cfg.validate().unwrap();
    let field = |text: &str| match StackConfig::from_str_with_format(text, false).unwrap_err() {
        ConfigError::Field { field, message } => (field, message),
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(field("[eks]\noperator_cidr_ttl_days = \"month\"\n").0, "eks.operator_cidr_ttl_days");
    assert_eq!(field("[eks]\ncheckip_url = 1\n").0, "eks.checkip_url");
    assert_eq!(field("[eks.node_group]\nmin = \"one\"\n").0, "eks.node_group.min");
    assert_eq!(field("[eks]\noperator_cidrs = []\n").0, "eks.operator_cidrs");
    assert_eq!(field("[network]\nvpc = {}\n").0, "network.vpc");
    assert_eq!(
        field("[network.existing]\nvpc_id = \"vpc-1\"\nprivate_subnet_ids = []\nsubnets = []\n").0,
        "network.existing.subnets"
    );
    // The section is written flat: the settings' keys beside the facade's, as files give them.
    let written = serde_json::to_value(Profile::Test.config()).unwrap();
    let eks = written["eks"].as_object().unwrap();
    assert!(eks.contains_key("node_group") && eks.contains_key("kubernetes_access"), "{eks:?}");
    assert!(!eks.contains_key("settings") && !eks.contains_key("operator_cidrs"), "{eks:?}");
    assert!(written["network"]["new"]["az_count"] == 2 && written["network"].get("existing").is_none());
    // The tiers get the sections as they are.
    let net = wiring::planned_network(&cfg);
    assert_eq!(wiring::eks_spec(&cfg, &net).settings, cfg.eks.settings);
    let ctx = wiring::context(&cfg, None).unwrap();
    assert_eq!(wiring::network_spec(&cfg, &ctx).settings, cfg.network);
    let ds = wiring::datastores_spec(&cfg, &net, &SecurityGroupId::new("sg-nodes"));
    assert_eq!(ds.settings, cfg.datastores);
}

/// China regions: each enabled platform chart needs a chart mirror and an image mirror, refused
/// before any change naming each field; with mirrors (tag included) the platform is valid.
#[test]
fn china_regions_refuse_the_global_chart_repositories_and_registries() {
    let mut cfg = Profile::Test.config().with_region("cn-northwest-1");
    let text = cfg.validate().unwrap_err().to_string();
    for addon in ["load_balancer_controller", "cluster_autoscaler", "metrics_server"] {
        assert!(text.contains(&format!("platform.{addon}.repository")), "{addon}: {text}");
        assert!(text.contains(&format!("platform.{addon}.image_repository")), "{addon}: {text}");
    }
    for addon in [
        &mut cfg.platform.load_balancer_controller,
        &mut cfg.platform.cluster_autoscaler,
        &mut cfg.platform.metrics_server,
    ] {
        addon.repository = "oci://123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn/charts".into();
        addon.image_repository = Some(format!("123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn/{}", addon.chart));
        addon.image_tag = Some("v-mirrored".into());
    }
    cfg.platform.metrics_server.enabled = false;
    cfg.platform.metrics_server.image_repository = None;
    let left = cfg.validate().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(!left.contains("platform."), "{left}");
    let autoscaler = cfg.platform.cluster_autoscaler.chart().unwrap();
    assert_eq!(autoscaler.image_tag.as_deref(), Some("v-mirrored"));
    // The same configuration in a commercial region needs no mirror.
    assert!(Profile::Test.config().validate().is_ok());
}
