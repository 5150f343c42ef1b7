//! Fails the build when a tier crate depends on a sibling tier: tiers depend on `dify-stack-core`,
//! the shared SDK adapters `dify-stack-aws` (which depend on core alone)
//! (and, for tests, the emulator harness) only; only the `dify-stack` facade composes them.

use std::path::{Path, PathBuf};

const TIERS: &[&str] = &["network", "eks", "datastores", "registry", "iam", "platform"];

/// The workspace root, from cargo's run-time variable (the compile-time one can name another
/// checkout when build artefacts are shared).
fn root() -> PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    Path::new(&dir).join("..")
}

#[test]
fn tiers_never_depend_on_sibling_tiers() {
    let root = root();
    for tier in TIERS {
        let manifest = std::fs::read_to_string(root.join("crates").join(tier).join("Cargo.toml")).unwrap();
        for other in TIERS.iter().filter(|o| *o != tier) {
            let dep = format!("dify-stack-{other}");
            assert!(
                !manifest.lines().any(|l| l.trim_start().starts_with(&dep)),
                "crates/{tier} depends on {dep}; pass its outputs as dify-stack-core ids instead"
            );
        }
        assert!(
            !manifest.contains("\ndify-stack.workspace") && !manifest.contains("\ndify-stack ="),
            "crates/{tier} depends on the facade"
        );
    }
}

#[test]
fn core_depends_on_no_tier_and_no_sdk_service_crate() {
    let root = root();
    let manifest = std::fs::read_to_string(root.join("crates/core/Cargo.toml")).unwrap();
    let deps = manifest.split("[dev-dependencies]").next().unwrap();
    for tier in TIERS {
        assert!(!deps.contains(&format!("dify-stack-{tier}")), "core depends on {tier}");
    }
    assert!(!deps.contains("aws-sdk-"), "core must stay free of service SDK crates");
}

#[test]
fn the_shared_sdk_adapters_sit_between_core_and_the_tiers() {
    let root = root();
    let manifest = std::fs::read_to_string(root.join("crates/aws/Cargo.toml")).unwrap();
    let deps = manifest.split("[features]").next().unwrap();
    for tier in TIERS {
        assert!(!deps.contains(&format!("dify-stack-{tier}")), "dify-stack-aws depends on the {tier} tier");
    }
    assert!(
        !deps.contains("\ndify-stack.workspace") && !deps.contains("\ndify-stack ="),
        "dify-stack-aws depends on the facade"
    );
    assert!(deps.contains("dify-stack-core"), "dify-stack-aws builds on core's AwsError");
    let core = std::fs::read_to_string(root.join("crates/core/Cargo.toml")).unwrap();
    assert!(!core.contains("dify-stack-aws"), "core depends on dify-stack-aws");
}
