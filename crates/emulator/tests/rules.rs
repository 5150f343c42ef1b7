//! Strict rules whose window is the emulator's pending time, proven in-process with a pending
//! time long enough that no machine load can close it (the shared server's 0.3 s can pass
//! between two requests on a busy machine).

/// ModifyDBCluster on a cluster that is still `creating` fails with InvalidDBClusterStateFault
/// (RDS API reference, ModifyDBCluster errors); once `available` it is accepted.
#[test]
fn an_aurora_cluster_is_not_modified_until_it_is_available() {
    let python = dify_stack_emulator::ensure_installed(&dify_stack_emulator::venv_dir())
        .expect("the emulator venv (scripts/install-emulator)");
    let ext = concat!(env!("CARGO_MANIFEST_DIR"), "/python/moto_ext.py");
    let script = r#"
import sys, types
ext = types.ModuleType("moto_ext")
exec(compile(open(sys.argv[1]).read(), "moto_ext.py", "exec"), ext.__dict__)
ext.install()
from moto.rds.models import rds_backends
from moto.rds.exceptions import InvalidDBClusterStateFault
b = rds_backends["123456789012"]["us-west-2"]
b.create_db_cluster({"db_cluster_identifier": "c", "engine": "aurora-postgresql",
                     "master_username": "dify", "master_user_password": "a-long-password-1"})
try:
    b.modify_db_cluster({"db_cluster_identifier": "c", "backup_retention_period": 3})
    print("accepted while creating")
except InvalidDBClusterStateFault as e:
    print("refused")
b.clusters["c"].status = "available"
b.modify_db_cluster({"db_cluster_identifier": "c", "backup_retention_period": 3})
print("accepted when available")
"#;
    let out = std::process::Command::new(python)
        .env("DIFY_STACK_EMULATOR_PENDING_SECONDS", "600")
        .arg("-c")
        .arg(script)
        .arg(ext)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "refused\naccepted when available", "{stderr}");
}
