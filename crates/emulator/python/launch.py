"""Launcher for the dify-stack local AWS emulator (moto server).

Started by the dify-stack-emulator crate as `python -c <launch.py> PORT <moto_ext.py source>`. It:
  * binds moto's server to 127.0.0.1 only (never another interface);
  * exits as soon as its standard input closes, so the server never outlives the
    test binary or demo that started it, even when that process is killed;
  * enables AWS-managed IAM policies (AmazonEKSClusterPolicy, ...);
  * installs moto_ext: what moto lacks and dify-stack needs (see moto_ext.py), then moto_day2
    when its source comes as a third argument (EKS day-two rules, see moto_day2.py), moto_quota
    as the fourth (the Elastic IP quota, see moto_quota.py) and moto_upgrade as the fifth
    (version upgrades of EKS, OpenSearch and Aurora, see moto_upgrade.py).
"""
import os
import sys
import threading


def _exit_when_parent_goes():
    try:
        while sys.stdin.buffer.read(1):
            pass
    finally:
        os._exit(0)


def main():
    port = sys.argv[1] if len(sys.argv) > 1 else "0"
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    # The extension's source comes as the second argument (the launcher runs via `-c`).
    if len(sys.argv) > 2:
        import types

        ext = types.ModuleType("moto_ext")
        exec(compile(sys.argv[2], "moto_ext.py", "exec"), ext.__dict__)
        ext.install()
        if len(sys.argv) > 3:  # moto_day2.py: EKS day-two rules on moto_ext's EKS model
            day2 = types.ModuleType("moto_day2")
            exec(compile(sys.argv[3], "moto_day2.py", "exec"), day2.__dict__)
            day2.install(ext)
        if len(sys.argv) > 4:  # moto_quota.py: the Elastic IP quota model
            quota = types.ModuleType("moto_quota")
            exec(compile(sys.argv[4], "moto_quota.py", "exec"), quota.__dict__)
            quota.install(ext)
        if len(sys.argv) > 5:  # moto_upgrade.py: version upgrades on moto_ext's and moto_day2's models
            upgrade = types.ModuleType("moto_upgrade")
            exec(compile(sys.argv[5], "moto_upgrade.py", "exec"), upgrade.__dict__)
            upgrade.install(ext, day2 if len(sys.argv) > 3 else None)
    from moto.server import main as moto_main

    moto_main(["-H", "127.0.0.1", "-p", port])


if __name__ == "__main__":
    main()
