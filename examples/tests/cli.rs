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
    // Never reach a real endpoint from these tests.
    c.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9").env("AWS_ACCESS_KEY_ID", "x").env("AWS_SECRET_ACCESS_KEY", "x");
    c
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
    // Credentials, but nothing listening (loopback port 9): the cause and the fix, no Debug dump.
    let (code, err) = run(&["plan"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Connection refused") && err.contains("Fix:"), "{err}");
    assert!(!err.contains("DispatchFailure") && !err.contains("ConnectorError"), "a Debug dump: {err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}
