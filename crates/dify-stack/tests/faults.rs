//! A faulty network: 20 seeded runs of apply with 20 % of requests failing (throttling in each
//! service's format, 500s, 503s, connection resets before and after the request reached the
//! emulator, latency). The SDK retries as configured; a run that still fails is re-run, as an
//! operator would. Each converges to the clean inventory; destroy under the same faults then
//! leaves nothing at all: the emulator's whole state of the account (moto's and the extension's,
//! tagged or not) after destroy is what it was before the first apply. Faults are a pure
//! function of the seed and the request (see `Calls::inject_faults`), so a failing seed fails
//! the same way when run again.

mod inventory;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use dify_stack::{DataPolicy, Profile, Stack, StackConfig, StackError};
use dify_stack_emulator::{Emulator, TestAccount};
use futures::StreamExt as _;

const RUNS: u64 = 20;
const RATE: f64 = 0.2;
const ATTEMPTS: usize = 8;

fn config() -> StackConfig {
    let mut cfg = Profile::Test.config().with_name("fault-test").expect("a valid stack name");
    cfg.iam.service_accounts = false;
    cfg.eks.checkip_url = Emulator::shared().expect("emulator").checkip_url();
    cfg.iam.discover_thumbprint = false;
    cfg
}

fn retrying(account: &TestAccount) -> aws_types::SdkConfig {
    account
        .config
        .to_builder()
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(40)),
        )
        .build()
}

fn normalized(lines: Vec<String>, account: &str) -> Vec<String> {
    lines.into_iter().map(|l| l.replace(account, "<account>")).collect()
}

/// What the whole account holds after destroy that it did not hold before the first apply,
/// tagged or not: the control bucket (the lock and recorded outputs live there) aside, and the
/// OpenSearch service-linked role, which is the account's, made once for every domain (AWS
/// documents it as created on the first domain and kept; deleting it while any domain exists
/// fails), so destroy keeps it.
fn leaked<'a>(before: &[String], after: &'a [String], control: &str) -> Vec<&'a String> {
    after
        .iter()
        .filter(|l| !before.contains(l) && !l.contains(control))
        .filter(|l| !l.contains("(AWSServiceRoleForAmazonOpenSearchService)"))
        .collect()
}

/// Runs `op` until it succeeds (bounded), removing a lock left by a failed run between tries.
async fn until_ok<T, F, Fut>(stack: &Stack, what: &str, mut op: F) -> (T, usize)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StackError>>,
{
    let mut errors = Vec::new();
    for attempt in 1..=ATTEMPTS {
        match op().await {
            Ok(v) => return (v, attempt),
            Err(e) => {
                errors.push(e.to_string());
                // A run whose lock release failed leaves its lock: the operator unlocks (the
                // unlock itself meets the same faults, so it gets a few tries too).
                let unlocked = futures::stream::iter(0..ATTEMPTS).any(|_| async { stack.unlock().await.is_ok() }).await;
                assert!(unlocked, "{what}: unlock failed {ATTEMPTS} times");
            }
        }
    }
    panic!("{what} did not converge in {ATTEMPTS} runs:\n{}", errors.join("\n---\n"));
}

#[tokio::test]
async fn apply_and_destroy_converge_on_a_faulty_network() {
    let emulator = Emulator::shared().unwrap();
    let clean = emulator.account("us-west-2").await;
    let stack = Stack::connect(config(), clean.config.clone()).await.unwrap();
    stack.apply().await.unwrap();
    let want = normalized(inventory::inventory(&clean.config, "fault-test").await, &clean.account_id);
    let want = &want;
    let results: Vec<(u64, usize, usize, usize)> = futures::stream::iter(0..RUNS)
        .map(|seed| async move {
            let account = emulator.account("us-west-2").await;
            // The whole account before the first apply, tagged or not.
            let before = emulator.state(&account.account_id, "us-west-2").await;
            let stack = Stack::connect(config(), retrying(&account)).await.unwrap();
            account.calls.inject_faults(seed, RATE);
            let (_, applies) = Box::pin(until_ok(&stack, "apply", || stack.apply())).await;
            account.calls.stop_faults();
            let have = normalized(inventory::inventory(&account.config, "fault-test").await, &account.account_id);
            assert_eq!(&have, want, "seed {seed}: duplicates or leaks after a faulty apply");
            assert!(stack.plan().await.unwrap().is_empty(), "seed {seed}");
            let control = stack.control().name().to_owned();
            let stack = stack.with_data_policy(DataPolicy::delete_everything());
            account.calls.inject_faults(seed + 1000, RATE);
            let (_, destroys) = Box::pin(until_ok(&stack, "destroy", || stack.destroy())).await;
            account.calls.stop_faults();
            let after = emulator.state(&account.account_id, "us-west-2").await;
            let leaked = leaked(&before, &after, &control);
            assert!(leaked.is_empty(), "seed {seed}: left in the account after destroy: {leaked:#?}");
            let injected: usize = account.calls.faults_injected().values().sum();
            (seed, applies, destroys, injected)
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let faults: usize = results.iter().map(|r| r.3).sum();
    let reruns: usize = results.iter().map(|r| r.1 + r.2 - 2).sum();
    eprintln!("{RUNS} seeded runs, {faults} faults injected, {reruns} re-runs needed: {results:?}");
    assert_eq!(results.len() as u64, RUNS);
    assert!(faults > RUNS as usize * 20, "faults were injected ({faults})");
}
