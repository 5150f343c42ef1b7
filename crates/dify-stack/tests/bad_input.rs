//! Bad input never panics: arbitrary TOML/YAML text, and arbitrary values in every field of a
//! configuration, go through parsing and whole-stack validation and come out as errors.

use dify_stack::{Profile, StackConfig};
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
            let _ = cfg.validate();
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
        version in (0u32..3, 0u32..60),
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
        // A name that breaks the rules is refused by `with_name` (the config keeps its own).
        c = c.clone().with_name(&name).unwrap_or(c);
        c.region = region;
        c.network.new.az_count = az;
        c.network.new.cidr = format!("10.0.0.0/{cidr_prefix}").parse().unwrap();
        c.eks.node_group.min = min;
        c.eks.node_group.desired = desired;
        c.eks.node_group.max = max;
        c.eks.node_group.disk_size_gib = disk;
        c.eks.node_group.instance_types = vec![instance];
        c.eks.node_group.ami_type = ami;
        c.eks.kubernetes_version = dify_stack::core::ids::KubernetesVersion::new(version.0, version.1);
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
        if let Err(errs) = c.validate() {
            // Every error names a path.
            prop_assert!(errs.errors().iter().all(|e| !e.path.is_empty()), "{errs}");
        }
    }
}

/// One leaf of the configuration schema, found by walking the serialised default configuration
/// (so the generator follows the schema as it is, not a copy of it).
#[derive(Debug, Clone)]
struct Leaf {
    /// serde_path_to_error's rendering of the path, e.g. `eks.log_types[0]`.
    path: String,
    /// The keys and indices from the root.
    steps: Vec<Result<String, usize>>,
    default: serde_json::Value,
}

fn leaves(v: &serde_json::Value, steps: &mut Vec<Result<String, usize>>, out: &mut Vec<Leaf>) {
    use serde_json::Value;
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                steps.push(Ok(k.clone()));
                leaves(child, steps, out);
                steps.pop();
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, child) in a.iter().enumerate() {
                steps.push(Err(i));
                leaves(child, steps, out);
                steps.pop();
            }
        }
        // Absent options and empty collections have no type to keep or break.
        Value::Null | Value::Object(_) | Value::Array(_) => {}
        leaf => {
            let mut path = String::new();
            for s in steps.iter() {
                match s {
                    Ok(k) if path.is_empty() => path.push_str(k),
                    Ok(k) => path.push_str(&format!(".{k}")),
                    Err(i) => path.push_str(&format!("[{i}]")),
                }
            }
            out.push(Leaf { path, steps: steps.clone(), default: leaf.clone() });
        }
    }
}

/// A document that sets `leaf` to `value` and nothing else (arrays keep their other items).
fn document(base: &serde_json::Value, leaf: &Leaf, value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn set(node: &mut Value, base: &Value, steps: &[Result<String, usize>], value: Value) {
        match steps.split_first() {
            None => *node = value,
            Some((Ok(k), rest)) => {
                let Value::Object(m) = node else { unreachable!() };
                let base_child = &base[k.as_str()];
                let child = m.entry(k.clone()).or_insert_with(|| match base_child {
                    Value::Array(a) => Value::Array(a.clone()),
                    Value::Object(_) => Value::Object(Default::default()),
                    _ => Value::Null,
                });
                set(child, base_child, rest, value);
            }
            Some((Err(i), rest)) => {
                let Value::Array(a) = node else { unreachable!() };
                set(&mut a[*i], &base[*i], rest, value);
            }
        }
    }
    let mut doc = Value::Object(Default::default());
    set(&mut doc, base, &leaf.steps, value);
    doc
}

/// A value of the leaf's own JSON type (the default, or a fresh one), or with `mistype` one of
/// another type.
fn value_for(default: &serde_json::Value, mistype: bool, seed: u64, text: &str) -> serde_json::Value {
    use serde_json::{Value, json};
    match (default, mistype) {
        (Value::Bool(_), false) => json!(seed.is_multiple_of(2)),
        (Value::Number(n), false) if n.is_f64() => json!((seed % 1000) as f64 / 8.0),
        (Value::Number(_), false) => json!(seed % 200),
        // Strings are often enums or formats (CIDRs, versions): half keep the default.
        (Value::String(s), false) => json!(if seed.is_multiple_of(2) { s.clone() } else { text.to_owned() }),
        (Value::String(_), true) => json!(seed % 200),
        (_, true) => json!(format!("not-a-{}", text.len())),
        (other, false) => other.clone(),
    }
}

/// Structured documents: one leaf of the real schema set to a value of its type, or of the wrong
/// type, written as TOML or YAML. Documents of the right shape must reach validation often
/// enough to test it, and a wrong type must be reported at exactly the leaf's path.
#[test]
fn structured_documents_reach_validation_and_a_wrong_type_names_its_field() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use std::cell::Cell;

    let base = serde_json::to_value(Profile::Prod.config()).unwrap();
    let mut all = Vec::new();
    leaves(&base, &mut Vec::new(), &mut all);
    // `profile` picks the defaults and is checked on its own.
    all.retain(|l| l.path != "profile");
    assert!(all.len() > 60, "the schema walk found {} leaves", all.len());

    const RUNS: u32 = 2000;
    let (typed, reached, mistyped, named) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    // A fixed seed: the counts below are the same on every run.
    let mut runner = TestRunner::new_with_rng(
        Config { cases: RUNS, failure_persistence: None, ..Config::default() },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = (0..all.len(), any::<bool>(), any::<bool>(), any::<u64>(), "[a-z0-9.-]{0,12}")
        .prop_map(|(i, mistype, yaml, seed, text)| (i, mistype && seed.is_multiple_of(4), yaml, seed, text));
    runner
        .run(&strategy, |(i, mistype, yaml, seed, text)| {
            let leaf = &all[i];
            let doc = document(&base, leaf, value_for(&leaf.default, mistype, seed, &text));
            let mut doc = doc.as_object().unwrap().clone();
            doc.insert("profile".into(), "prod".into());
            let doc = serde_json::Value::Object(doc);
            let rendered = if yaml { serde_norway::to_string(&doc).unwrap() } else { toml::to_string(&doc).unwrap() };
            let parsed = StackConfig::from_str_with_format(&rendered, yaml);
            if mistype {
                mistyped.set(mistyped.get() + 1);
                match parsed {
                    Err(dify_stack::ConfigError::Field { field, .. }) if field == leaf.path => {
                        named.set(named.get() + 1)
                    }
                    other => prop_assert!(false, "{}: wrong type not reported at its path: {other:?}", leaf.path),
                }
            } else {
                typed.set(typed.get() + 1);
                if let Ok(cfg) = parsed {
                    reached.set(reached.get() + 1);
                    if let Err(errs) = cfg.validate() {
                        prop_assert!(errs.errors().iter().all(|e| !e.path.is_empty()), "{errs}");
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    println!(
        "{} leaves; {} well-typed documents, {} reached validation; {} mistyped, {} reported at their path",
        all.len(),
        typed.get(),
        reached.get(),
        mistyped.get(),
        named.get()
    );
    assert!(reached.get() * 2 >= typed.get(), "only {} of {} well-typed documents parsed", reached.get(), typed.get());
    assert!(mistyped.get() >= RUNS / 20 && named.get() == mistyped.get());
}
