//! Rules of the emulator's Python extension proven in-process, where a test can hold a window
//! open that the shared server closes by wall time: deferred EKS deletes settled once under
//! concurrent requests, and ModifyDBCluster refused while the cluster is not available (with a
//! pending time long enough that no machine load can close it; the shared server's 0.3 s can
//! pass between two requests on a busy machine).

/// Runs `script` with the emulator venv's Python, the extension's source path as `argv[1]` and
/// `env` set; returns its standard output, trimmed.
fn run_python(script: &str, env: &[(&str, &str)]) -> String {
    let python = dify_stack_emulator::ensure_installed(&dify_stack_emulator::venv_dir())
        .expect("the emulator venv (scripts/install-emulator)");
    let ext = concat!(env!("CARGO_MANIFEST_DIR"), "/python/moto_ext.py");
    let out =
        std::process::Command::new(python).envs(env.iter().copied()).arg("-c").arg(script).arg(ext).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs the extension's `_eks_settle` from eight threads started together on one entry whose
/// pending time is over, with a deferred delete that lets a second caller in if one can get
/// there (a two-party barrier with a timeout): the delete must run exactly once.
#[test]
fn a_deferred_eks_delete_runs_once_when_requests_settle_concurrently() {
    let script = r#"
import sys, threading, time, types
ext = types.ModuleType("moto_ext")
exec(compile(open(sys.argv[1]).read(), "moto_ext.py", "exec"), ext.__dict__)

deletes = []
inside = threading.Barrier(2, timeout=1.0)

def deferred_delete(backend, name):
    deletes.append(name)
    try:
        inside.wait()  # a second concurrent delete would meet this one here
    except threading.BrokenBarrierError:
        pass
    backend.clusters.pop(name, None)

ext.eks_models.EKSBackend._dify_orig_delete_cluster = staticmethod(deferred_delete)

class Cluster:
    status = "DELETING"

# Every settling thread looks the cluster up between taking its list of pending entries and
# removing the entry: hold each lookup until all eight threads are there (or a second has passed,
# when only one may be inside at a time), so the threads' lists are all taken before any removal.
lookups = threading.Barrier(8, timeout=1.0)

class Clusters(dict):
    def get(self, key, default=None):
        try:
            lookups.wait()
        except threading.BrokenBarrierError:
            pass
        return super().get(key, default)

class Backend:
    account_id = "123456789012"
    region_name = "us-west-2"
    def __init__(self):
        self.clusters = Clusters({"c": Cluster()})

backend = Backend()
ext._eks_busy[("123456789012", "us-west-2", "cluster", "c", "")] = ("DELETING", time.monotonic() - 1, "gone")
start = threading.Barrier(8)
def settle():
    start.wait()
    ext._eks_settle(backend)
threads = [threading.Thread(target=settle) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(deletes))
"#;
    assert_eq!(run_python(script, &[]), "1", "deferred deletes run");
}

/// ModifyDBCluster on a cluster that is still `creating` fails with InvalidDBClusterStateFault
/// (RDS API reference, ModifyDBCluster errors); once `available` it is accepted.
#[test]
fn an_aurora_cluster_is_not_modified_until_it_is_available() {
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
    assert_eq!(
        run_python(script, &[("DIFY_STACK_EMULATOR_PENDING_SECONDS", "600")]),
        "refused\naccepted when available"
    );
}
