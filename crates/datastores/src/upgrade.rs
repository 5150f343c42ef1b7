//! Engine version changes, shared by the three stores: how a wanted version compares with the
//! running one, and whether a snapshot is taken before the upgrade.
//!
//! Every store upgrades in place and never by replacement: Aurora with `ModifyDBCluster
//! EngineVersion`, Redis with `ModifyReplicationGroup EngineVersion`, OpenSearch with
//! `UpgradeDomain` (a blue/green deployment). None of the three can go back: a downgrade is
//! refused before any write, with the fix.

use dify_stack_core::wait::Condition;
use dify_stack_core::{Context, Environment, Probe};

use crate::common::DatastoresError;

/// What moving from the running version to the wanted one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The same version (the wanted one may name fewer components: Redis `7.1` runs as `7.1.0`).
    Same,
    /// A later version; `major` when the first component (or the engine family) changes.
    Upgrade { major: bool },
    /// An earlier version.
    Downgrade,
    /// One of the two is not a version this code can compare.
    Unknown,
}

/// The components of a dotted version (`17.5` -> `[17, 5]`); `x` (as in Redis `6.x`) is a
/// wildcard that equals any number. `None` for anything else.
fn components(v: &str) -> Option<Vec<Option<u32>>> {
    v.split('.')
        .map(|p| match p {
            "x" | "X" => Some(None),
            p => p.parse::<u32>().ok().map(Some),
        })
        .collect()
}

/// Compares two dotted versions over the wanted one's components (a missing running component
/// counts as 0).
pub(crate) fn step(have: &str, want: &str) -> Step {
    let (Some(h), Some(w)) = (components(have), components(want)) else {
        return if have == want { Step::Same } else { Step::Unknown };
    };
    for (i, w) in w.iter().enumerate() {
        let h = h.get(i).copied().unwrap_or(Some(0));
        match (h, *w) {
            (Some(h), Some(w)) if w > h => return Step::Upgrade { major: i == 0 },
            (Some(h), Some(w)) if w < h => return Step::Downgrade,
            _ => {}
        }
    }
    Step::Same
}

/// Compares two OpenSearch Service versions (`OpenSearch_2.19`, `Elasticsearch_7.10`): within
/// one engine by number; from Elasticsearch to OpenSearch is an upgrade (OpenSearch developer
/// guide, "Upgrading Amazon OpenSearch Service domains": Elasticsearch 7.x upgrades to
/// OpenSearch 1.x), the other way round is not.
pub(crate) fn search_step(have: &str, want: &str) -> Step {
    let split = |v: &str| v.split_once('_').map(|(engine, n)| (engine.to_owned(), n.to_owned()));
    match (split(have), split(want)) {
        (Some((he, hn)), Some((we, wn))) if he == we => step(&hn, &wn),
        (Some((he, _)), Some((we, _))) if he == "Elasticsearch" && we == "OpenSearch" => Step::Upgrade { major: true },
        (Some((he, _)), Some((we, _))) if he == "OpenSearch" && we == "Elasticsearch" => Step::Downgrade,
        _ if have == want => Step::Same,
        _ => Step::Unknown,
    }
}

/// The first component of a version (`17.5` -> `17`).
pub(crate) fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// Whether a named snapshot is taken (and waited for) before an Aurora or Redis engine upgrade:
/// in prod, as prod also keeps Aurora's deletion protection and final snapshot
/// (`AuroraSpec::for_environment`) and is what [`crate::spec::DatastoresSpec::validate`] holds
/// to the data-protection rules. A test stack upgrades without one.
pub(crate) fn snapshot_first(ctx: &Context) -> bool {
    ctx.environment() == Environment::Prod
}

/// The condition of a pre-upgrade snapshot (its status as DescribeDBClusterSnapshots or
/// DescribeSnapshots gives it): `available`; `failed` (or being deleted) ends the wait with the
/// fix; not visible yet (right after the create) is pending.
pub(crate) fn snapshot_available<'a>(
    kind: &'static str,
    name: &'a str,
) -> impl Condition<String, DatastoresError> + 'a {
    move |status: Option<&String>| match status.map(String::as_str) {
        Some("available") => Ok(Probe::Done(())),
        Some(s @ ("failed" | "error" | "deleting")) => Err(DatastoresError::Failed {
            kind,
            name: name.to_owned(),
            status: format!("{s}: the engine upgrade waits for it; delete the snapshot and apply again"),
        }),
        Some(s) => Ok(Probe::Pending(s.to_owned())),
        None => Ok(Probe::Pending("not visible yet".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number_over_the_wanted_components() {
        assert_eq!(step("17.5", "17.5"), Step::Same);
        assert_eq!(step("17.5", "17.6"), Step::Upgrade { major: false });
        assert_eq!(step("17.5", "17.10"), Step::Upgrade { major: false }, "by number, not by text");
        assert_eq!(step("16.9", "17.5"), Step::Upgrade { major: true });
        assert_eq!(step("17.6", "17.5"), Step::Downgrade);
        assert_eq!(step("17.5", "16.9"), Step::Downgrade);
        // ElastiCache reports the patch level the spec does not name.
        assert_eq!(step("7.1.0", "7.1"), Step::Same);
        assert_eq!(step("7.0.7", "7.1"), Step::Upgrade { major: false });
        assert_eq!(step("6.2.6", "6.x"), Step::Same);
        assert_eq!(step("6.2.6", "7.1"), Step::Upgrade { major: true });
        assert_eq!(step("17.5", "seventeen"), Step::Unknown);
    }

    #[test]
    fn a_snapshot_is_waited_for_until_available_and_a_failed_one_says_the_fix() {
        let c = snapshot_available("Aurora cluster snapshot", "s-pre-upgrade-17-5-to-17-6");
        let st = |s: &str| Some(s.to_owned());
        assert!(matches!(c(st("available").as_ref()), Ok(Probe::Done(()))));
        assert!(matches!(c(st("creating").as_ref()), Ok(Probe::Pending(s)) if s == "creating"));
        assert!(matches!(c(None), Ok(Probe::Pending(s)) if s == "not visible yet"));
        let e = c(st("failed").as_ref()).unwrap_err().to_string();
        assert!(e.contains("s-pre-upgrade-17-5-to-17-6") && e.contains("delete the snapshot"), "{e}");
    }

    #[test]
    fn search_versions_compare_within_an_engine_and_from_elasticsearch_to_opensearch() {
        assert_eq!(search_step("OpenSearch_2.17", "OpenSearch_2.19"), Step::Upgrade { major: false });
        assert_eq!(search_step("OpenSearch_2.19", "OpenSearch_3.1"), Step::Upgrade { major: true });
        assert_eq!(search_step("OpenSearch_2.19", "OpenSearch_2.17"), Step::Downgrade);
        assert_eq!(search_step("OpenSearch_2.19", "OpenSearch_2.19"), Step::Same);
        assert_eq!(search_step("Elasticsearch_7.10", "OpenSearch_1.3"), Step::Upgrade { major: true });
        assert_eq!(search_step("OpenSearch_1.3", "Elasticsearch_7.10"), Step::Downgrade);
        assert_eq!(search_step("OpenSearch_2.19", "2.19"), Step::Unknown);
    }
}
