//! Bad input never panics: arbitrary TOML/YAML text, and arbitrary values in every field of a
//! configuration, go through parsing and whole-stack validation and come out as errors.

use dify_stack::{Profile, StackConfig, wiring};
use proptest::prelude::*;

const CASES: u32 = 5000;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        // Anything at all.
        ".{0,200}",
        // Config-shaped: keys of the real schema with junk values.
        (
            prop::sample::select(vec![
                "name",
                "profile",
                "region",
                "tags",
                "network",
                "eks",
                "datastores",
                "registry",
                "iam",
                "allow_unprotected_prod",
                "[eks.node_group]",
                "[datastores.aurora]",
                "[network.new]",
            ]),
            ".{0,40}",
            "[a-z_]{0,12}",
            ".{0,40}"
        )
            .prop_map(|(k, v, k2, v2)| format!("{k} = {v}\n{k2}: {v2}\n")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn parsing_and_validating_text_never_panics(doc in text(), yaml in any::<bool>()) {
        if let Ok(cfg) = StackConfig::from_str_with_format(&doc, yaml) {
            let _ = wiring::validate(&cfg);
        }
    }

    #[test]
    fn validating_arbitrary_field_values_never_panics(
        name in ".{0,30}",
        region in ".{0,20}",
        az in any::<u8>(),
        cidr_prefix in 0u8..=32,
        min in any::<i32>(),
        desired in any::<i32>(),
        max in any::<i32>(),
        disk in any::<i32>(),
        instance in ".{0,20}",
        ami in ".{0,30}",
        version in ".{0,8}",
        min_acu in any::<f64>(),
        max_acu in any::<f64>(),
        instances in any::<u32>(),
        retention in any::<i32>(),
        redis_nodes in any::<i32>(),
        os_count in any::<i32>(),
        zone_aware in any::<bool>(),
        volume in any::<i32>(),
        cidrs in prop::collection::vec(".{0,20}", 0..3),
        namespace in ".{0,70}",
        keep in any::<u32>(),
        prod in any::<bool>(),
    ) {
        let mut c = if prod { Profile::Prod.config() } else { Profile::Test.config() };
        c.name = name;
        c.region = region;
        c.network.new.az_count = az;
        c.network.new.cidr = format!("10.0.0.0/{cidr_prefix}").parse().unwrap();
        c.eks.node_group.min = min;
        c.eks.node_group.desired = desired;
        c.eks.node_group.max = max;
        c.eks.node_group.disk_size_gib = disk;
        c.eks.node_group.instance_types = vec![instance];
        c.eks.node_group.ami_type = ami;
        c.eks.kubernetes_version = version;
        c.eks.endpoint.public_access_cidrs = cidrs;
        c.datastores.aurora.min_acu = min_acu;
        c.datastores.aurora.max_acu = max_acu;
        c.datastores.aurora.instances = instances;
        c.datastores.aurora.backup_retention_days = retention;
        c.datastores.redis.nodes = redis_nodes;
        c.datastores.opensearch.instance_count = os_count;
        c.datastores.opensearch.zone_awareness = zone_aware;
        c.datastores.opensearch.volume_gib = volume;
        c.iam.namespace = namespace;
        c.registry.app.keep_last = keep;
        if let Err(errs) = wiring::validate(&c) {
            // Every error names a path.
            prop_assert!(errs.errors().iter().all(|e| !e.path.is_empty()), "{errs}");
        }
    }
}
