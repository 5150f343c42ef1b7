//! Crash at every call: a clean apply of the test profile makes N requests; for cut points k
//! in 1..N the request stream is cut after k requests, one of three ways in turn (`Cut`): before
//! the request reaches AWS; after AWS applied it with the response lost, and so for every later
//! request of the dead run (harsher than a crash: it keeps sending until its waits give up); or
//! a stopped process (the request past the cut lands, nothing after it does). Then a new
//! run unlocks the stale lock and applies again. The inventory (every resource carrying the
//! stack tag, across all services) must equal the clean run's, the plan must be empty, and
//! destroy must leave nothing at all: the emulator's whole state of the account (moto's and the
//! extension's, tagged or not) after destroy is what it was before the first apply.
//!
//! CI runs 40 evenly spread cut points; `DIFY_STACK_FULL_SWEEP=1` runs every one.

mod inventory;

use std::time::Duration;

use dify_stack::{DataPolicy, Profile, Stack, StackConfig};
use dify_stack_core::WaitPolicy;
use dify_stack_emulator::{Cut, Emulator};
use futures::StreamExt as _;

fn config() -> StackConfig {
    let mut cfg = Profile::Test.config().with_name("crash-test").expect("a valid stack name");
    cfg.iam.service_accounts = false;
    cfg.eks.checkip_url = Emulator::shared().expect("emulator").checkip_url();
    cfg.iam.discover_thumbprint = false;
    cfg
}

/// After the cut every request fails: retries give up fast.
fn quick() -> WaitPolicy {
    WaitPolicy {
        initial_interval: Duration::from_millis(5),
        max_interval: Duration::from_millis(50),
        // Above the strict emulator's pending states (0.3 s: Redis `creating`, `deleting`).
        max_wait: Duration::from_secs(5),
        ..Default::default()
    }
}

/// Inventories of different accounts differ only in the bucket name's account id.
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

#[tokio::test]
async fn apply_converges_after_a_crash_at_any_request() {
    let emulator = Emulator::shared().unwrap();
    let clean = emulator.account("us-west-2").await;
    let stack = Stack::connect(config(), clean.config.clone()).await.unwrap().with_wait(quick());
    let before = clean.calls.count();
    stack.apply().await.unwrap();
    let n = clean.calls.count() - before;
    let want = normalized(inventory::inventory(&clean.config, "crash-test").await, &clean.account_id);
    assert!(want.len() >= 40, "{want:#?}");
    let full = std::env::var_os("DIFY_STACK_FULL_SWEEP").is_some();
    let points: Vec<usize> = if full { (1..n).collect() } else { (0..40).map(|i| 1 + i * (n - 2) / 39).collect() };
    eprintln!("clean apply: {n} requests, {} resources; sweeping {} cut points", want.len(), points.len());
    let started = std::time::Instant::now();
    let want = &want;
    let runs = points.iter().map(|&k| async move {
        let account = emulator.account("us-west-2").await;
        // The whole account before the first apply, tagged or not.
        let before = emulator.state(&account.account_id, "us-west-2").await;
        let stack = Stack::connect(config(), account.config.clone()).await.unwrap().with_wait(quick());
        // Three kinds of cut in turn: the request never sent; sent with the response lost and
        // every later request too (the run outlives a lost connection); the process stopped (the
        // one request past the cut lands, nothing after it does).
        let cut = [Cut::AfterSend, Cut::BeforeSend, Cut::Stop][k % 3];
        account.calls.crash_after(k, cut);
        // Waits poll the strict emulator's pending states a timing-dependent number of times,
        // so a cut point near the end may lie beyond what this run needs: then there is nothing
        // to resume, and the checks below still apply.
        if stack.apply().await.is_ok() {
            eprintln!("k={k}: this run needed fewer than {k} requests (fewer polls than the clean run)");
        }
        account.calls.heal();
        // The dead run's lock stays until it expires; the operator removes it.
        stack.unlock().await.unwrap();
        stack.apply().await.unwrap_or_else(|e| panic!("k={k} {cut:?}: resume failed: {e}"));
        let have = normalized(inventory::inventory(&account.config, "crash-test").await, &account.account_id);
        assert_eq!(&have, want, "k={k} {cut:?}: duplicates or leaks");
        let plan = stack.plan().await.unwrap();
        assert!(plan.is_empty(), "k={k} {cut:?}: {plan}");
        let control = stack.control().name().to_owned();
        let stack = stack.with_data_policy(DataPolicy::delete_everything());
        stack.destroy().await.unwrap_or_else(|e| panic!("k={k}: destroy failed: {e}"));
        let after = emulator.state(&account.account_id, "us-west-2").await;
        let leaked = leaked(&before, &after, &control);
        assert!(leaked.is_empty(), "k={k} {cut:?}: left in the account after destroy: {leaked:#?}");
    });
    let done: Vec<()> = futures::stream::iter(runs).buffer_unordered(4).collect().await;
    assert_eq!(done.len(), points.len());
    eprintln!("swept {} cut points in {:.1?}", points.len(), started.elapsed());
}
