//! CLI misuse exits 2 with a message naming the problem, before any AWS call.

use std::path::PathBuf;
use std::process::Command;

/// The `dify-stack` example binary, built by `cargo test` next to this test's directory.
fn cli() -> Command {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin: PathBuf = target.join("examples").join(format!("dify-stack{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} not built", bin.display());
    let mut c = Command::new(bin);
    // Never reach a real endpoint from these tests: a loopback port just closed.
    c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", closed_port()))
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x");
    c
}

/// A loopback port nothing listens on: bound by the system, then closed (not a fixed port
/// assumed to be free).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn run(args: &[&str]) -> (i32, String) {
    let out = cli().args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dify-stack-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn misuse_exits_2_and_names_the_problem() {
    let bad_toml = temp("bad.toml", "name = [\n");
    let bad_yaml = temp("bad.yaml", "eks: [1, 2\n");
    let unknown = temp("unknown.toml", "colour = \"blue\"\n");
    let invalid = temp("invalid.toml", "[eks.node_group]\ninstance_types = [\"m7i.xlarge\"]\n");
    let txt = temp("config.txt", "name = \"x\"\n");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["launch"], "unrecognized subcommand"),
        (vec!["plan", "--colour"], "unexpected argument"),
        (vec!["plan", "--profile", "staging"], "staging"),
        (vec![], "Usage"),
        (vec!["plan", "--config", "/nonexistent/dify.toml"], "cannot read config file /nonexistent/dify.toml"),
        (vec!["plan", "--config", bad_toml.to_str().unwrap()], "bad.toml"),
        (vec!["plan", "--config", bad_yaml.to_str().unwrap()], "bad.yaml"),
        (vec!["plan", "--config", unknown.to_str().unwrap()], "colour"),
        (vec!["plan", "--config", txt.to_str().unwrap()], "use a .toml, .yaml or .yml file"),
        (vec!["plan", "--config", invalid.to_str().unwrap()], "eks.node_group.instance_types[0]"),
        (vec!["plan", "--name", "X"], "name"),
        (vec!["apply", "--region", "mars-east-1"], "mars-east-1"),
        (vec!["destroy", "--delete-data", "--bogus"], "unexpected argument"),
    ];
    for (args, needle) in cases {
        let (code, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: exit {code}\n{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {needle:?} missing in\n{stderr}");
    }
}

#[test]
fn help_and_version_exit_0() {
    assert_eq!(run(&["--help"]).0, 0);
    assert_eq!(run(&["--version"]).0, 0);
}

#[test]
fn missing_credentials_and_an_unreachable_endpoint_are_one_line_with_the_fix_and_no_escape_codes() {
    // No credentials anywhere (no profile files, no instance metadata): the chain fails before
    // any request.
    let out = cli()
        .args(["plan"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no AWS credentials found") && err.contains("AWS_PROFILE"), "{err}");
    assert!(!err.contains('\u{1b}'), "escape codes in a pipe: {err:?}");
    assert!(err.trim().lines().count() <= 2 && err.len() < 400, "{err}");
    // Credentials, but nothing listening (a closed loopback port): the cause and the fix, no Debug dump.
    let (code, err) = run(&["plan"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Connection refused") && err.contains("Fix:"), "{err}");
    assert!(!err.contains("DispatchFailure") && !err.contains("ConnectorError"), "a Debug dump: {err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

/// `plan --detailed-exitcode` against the strict emulator, as a scheduled drift check runs it:
/// the CLI finds the emulator through `AWS_ENDPOINT_URL` like any endpoint.
#[test]
fn plan_detailed_exitcode_is_0_converged_2_after_drift_1_on_bad_input() {
    let emulator = dify_stack_emulator::Emulator::shared().expect("the emulator (scripts/install-emulator)");
    let config = temp(
        "drift.toml",
        &format!(
            "profile = \"test\"\nname = \"drift-cli\"\n[tags]\nteam = \"platform\"\n[eks]\ncheckip_url = \"{}\"\n[iam]\nservice_accounts = false\ndiscover_thumbprint = false\n",
            emulator.checkip_url()
        ),
    );
    let config = config.to_str().unwrap();
    let run_here = |args: &[&str]| {
        let out = cli()
            .args(args)
            .env("AWS_ENDPOINT_URL", emulator.endpoint())
            .env("AWS_REGION", "us-west-2")
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run_here(&["apply", "--config", config, "--yes"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_here(&["plan", "--config", config, "--detailed-exitcode"]);
    assert_eq!(code, 0, "converged: {out}{err}");
    let (code, out, _) = run_here(&["plan", "--config", config, "--detailed-exitcode", "--json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["changed"], false, "{out}");

    // Someone edits a tag of ours on the VPC in the console.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config("us-west-2", None).await);
        let vpcs = ec2
            .describe_vpcs()
            .filters(aws_sdk_ec2::types::Filter::builder().name("tag:team").values("platform").build())
            .send()
            .await
            .unwrap();
        let vpc = vpcs
            .vpcs()
            .iter()
            .find(|v| v.tags().iter().any(|t| t.value() == Some("drift-cli")))
            .expect("the stack's VPC");
        let tag = aws_sdk_ec2::types::Tag::builder().key("team").value("someone-else").build();
        ec2.create_tags().resources(vpc.vpc_id().unwrap()).tags(tag).send().await.unwrap();
    });
    let (code, out, err) = run_here(&["plan", "--config", config, "--detailed-exitcode", "--json"]);
    assert_eq!(code, 2, "drifted: {out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["changed"], true);
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "one tag update, nothing else: {out}");
    assert_eq!(
        (changes[0]["kind"].as_str(), changes[0]["resource"]["kind"].as_str()),
        (Some("update"), Some("ec2:vpc")),
        "{out}"
    );
    assert!(out.contains("tags.team") && out.contains("someone-else"), "{out}");

    // Bad input with the flag: 1 (2 means "changes"); without it, 2 as before.
    let bad = temp("drift-bad.toml", "[eks.node_group]\ninstance_types = [\"m7i.xlarge\"]\n");
    let (code, _, err) = run_here(&["plan", "--config", bad.to_str().unwrap(), "--detailed-exitcode"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("eks.node_group.instance_types[0]"), "{err}");
    assert_eq!(run_here(&["plan", "--detailed-exitcode", "--colour"]).0, 1);
    assert_eq!(run_here(&["plan", "--config", bad.to_str().unwrap()]).0, 2);
}
