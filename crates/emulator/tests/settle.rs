//! The extension's deferred EKS deletes settle once when several of moto's request threads
//! settle at the same moment (each request settles pending entries first).

/// Runs the extension's `_eks_settle` from eight threads started together on one entry whose
/// pending time is over, with a deferred delete that lets a second caller in if one can get
/// there (a two-party barrier with a timeout): the delete must run exactly once.
#[test]
fn a_deferred_eks_delete_runs_once_when_requests_settle_concurrently() {
    let python = dify_stack_emulator::ensure_installed(&dify_stack_emulator::venv_dir())
        .expect("the emulator venv (scripts/install-emulator)");
    let ext = concat!(env!("CARGO_MANIFEST_DIR"), "/python/moto_ext.py");
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
    let out = std::process::Command::new(python).arg("-c").arg(script).arg(ext).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "deferred deletes run: {stderr}");
}
