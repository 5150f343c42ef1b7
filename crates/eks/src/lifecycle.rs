//! The Kubernetes version lifecycle on EKS: when each minor version leaves standard support and
//! extended support, and what extended support costs. A minor version is in standard support for
//! 14 months after its EKS release, then in extended support for 12 more at an extra charge per
//! cluster-hour, then auto-upgraded (EKS user guide, "Understand the Kubernetes version lifecycle
//! on EKS"; dates from the EKS Kubernetes release calendar; prices from the EKS pricing page).

use std::time::{Duration, SystemTime};

/// Price per cluster-hour in standard support (USD, commercial regions).
pub const STANDARD_PRICE_PER_HOUR: f64 = 0.10;
/// Price per cluster-hour in extended support (USD, commercial regions).
pub const EXTENDED_PRICE_PER_HOUR: f64 = 0.60;

/// One minor version: (version, end of standard support, end of extended support), as dates.
pub const CALENDAR: [(&str, &str, &str); 8] = [
    ("1.28", "2024-11-26", "2025-11-26"),
    ("1.29", "2025-03-23", "2026-03-23"),
    ("1.30", "2025-07-23", "2026-07-23"),
    ("1.31", "2025-11-26", "2026-11-26"),
    ("1.32", "2026-03-23", "2027-03-23"),
    ("1.33", "2026-07-29", "2027-07-29"),
    ("1.34", "2026-12-02", "2027-12-02"),
    ("1.35", "2027-03-27", "2028-03-27"),
];

/// Where a version stands on a given day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// In standard support until the date.
    Standard {
        /// Last day of standard support.
        until: &'static str,
    },
    /// In extended support (extra charge) until the date.
    Extended {
        /// Since when.
        since: &'static str,
        /// Last day.
        until: &'static str,
    },
    /// Past extended support: EKS no longer creates it and upgrades existing clusters.
    Ended {
        /// Since when.
        since: &'static str,
    },
    /// Not in the table (newer than this library knows, or a typo caught elsewhere).
    Unknown,
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
fn days(date: &str) -> i64 {
    let mut it = date.split('-').map(|p| p.parse::<i64>().unwrap_or(0));
    let (y, m, d) = (it.next().unwrap_or(1970), it.next().unwrap_or(1), it.next().unwrap_or(1));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The support status of `version` at `now`.
pub fn support(version: &str, now: SystemTime) -> Support {
    let today = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64 / 86_400;
    let Some((_, std_end, ext_end)) = CALENDAR.iter().find(|(v, _, _)| *v == version) else {
        return Support::Unknown;
    };
    if today <= days(std_end) {
        Support::Standard { until: std_end }
    } else if today <= days(ext_end) {
        Support::Extended { since: std_end, until: ext_end }
    } else {
        Support::Ended { since: ext_end }
    }
}

/// A sentence for the plan when the version is not in standard support; `None` otherwise.
pub fn support_note(version: &str, now: SystemTime) -> Option<String> {
    let newer: Vec<&str> = CALENDAR
        .iter()
        .filter(|(v, _, _)| matches!(support(v, now), Support::Standard { .. }))
        .map(|(v, _, _)| *v)
        .collect();
    let advice = match newer.first() {
        Some(v) => format!(
            "set eks.kubernetes_version to \"{v}\" or later (apply upgrades one minor at a time, in the steps the plan shows)"
        ),
        None => "upgrade to a newer minor (apply upgrades one minor at a time, in the steps the plan shows)".to_owned(),
    };
    match support(version, now) {
        Support::Extended { since, until } => Some(format!(
            "Kubernetes {version} is in EKS extended support since {since} (until {until}): ${EXTENDED_PRICE_PER_HOUR:.2} per cluster-hour instead of ${STANDARD_PRICE_PER_HOUR:.2} (about ${:.0} more a month); {advice}",
            (EXTENDED_PRICE_PER_HOUR - STANDARD_PRICE_PER_HOUR) * 730.0
        )),
        Support::Ended { since } => Some(format!(
            "Kubernetes {version} left EKS extended support on {since}: EKS creates no new cluster of it and upgrades existing ones; {advice}"
        )),
        _ => None,
    }
}

/// A sentence for the plan when an upgrade from `have` to `want` changes what the control plane
/// costs: out of extended support into standard support, or the other way; `None` otherwise.
pub fn upgrade_cost_note(have: &str, want: &str, now: SystemTime) -> Option<String> {
    let monthly = (EXTENDED_PRICE_PER_HOUR - STANDARD_PRICE_PER_HOUR) * 730.0;
    match (support(have, now), support(want, now)) {
        (Support::Extended { .. } | Support::Ended { .. }, Support::Standard { until }) => Some(format!(
            "the upgrade from Kubernetes {have} to {want} leaves extended support: ${STANDARD_PRICE_PER_HOUR:.2} instead of ${EXTENDED_PRICE_PER_HOUR:.2} per cluster-hour (about ${monthly:.0} less a month), in standard support until {until}"
        )),
        (Support::Standard { .. }, Support::Extended { since, .. }) => Some(format!(
            "Kubernetes {want} is in extended support since {since}: the upgrade from {have} costs ${EXTENDED_PRICE_PER_HOUR:.2} instead of ${STANDARD_PRICE_PER_HOUR:.2} per cluster-hour (about ${monthly:.0} more a month)"
        )),
        _ => None,
    }
}

/// A sentence for the plan on what the support type means for `version`: with `STANDARD`, the
/// date EKS upgrades the cluster by itself (EKS user guide, "View current cluster upgrade
/// policy": "If your upgrade policy is STANDARD, it will be automatically upgraded"); `None` with
/// `EXTENDED` (the extended-support cost is [`support_note`]'s) or an unknown version.
pub fn support_type_note(version: &str, support_type: crate::SupportType, now: SystemTime) -> Option<String> {
    if support_type != crate::SupportType::Standard {
        return None;
    }
    match support(version, now) {
        Support::Standard { until } => Some(format!(
            "eks.support_type STANDARD: EKS upgrades the cluster from Kubernetes {version} by itself when standard support ends on {until} (set EXTENDED to stay on it at ${EXTENDED_PRICE_PER_HOUR:.2} per cluster-hour)"
        )),
        Support::Extended { .. } | Support::Ended { .. } => Some(format!(
            "eks.support_type STANDARD: Kubernetes {version} is past standard support, so EKS may upgrade the cluster by itself at any time; upgrade it yourself first"
        )),
        Support::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(date: &str) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(days(date) as u64 * 86_400 + 3600)
    }

    #[test]
    fn the_calendar_places_each_day_in_its_period() {
        assert_eq!(days("1970-01-01"), 0);
        assert_eq!(days("2000-03-01"), 11_017);
        assert_eq!(support("1.33", at("2026-07-29")), Support::Standard { until: "2026-07-29" });
        assert_eq!(support("1.33", at("2026-11-30")), Support::Extended { since: "2026-07-29", until: "2027-07-29" });
        assert_eq!(support("1.31", at("2026-11-30")), Support::Ended { since: "2026-11-26" });
        assert_eq!(support("1.99", at("2026-11-30")), Support::Unknown);
        // Each end of extended support is 12 months after the end of standard support.
        for (v, std_end, ext_end) in CALENDAR {
            assert!((365..=366).contains(&(days(ext_end) - days(std_end))), "{v}");
        }
    }

    #[test]
    fn the_plan_note_names_the_cost_and_the_way_out() {
        let note = support_note("1.33", at("2026-11-30")).unwrap();
        for needle in ["extended support since 2026-07-29", "$0.60 per cluster-hour", "$365 more a month", "\"1.34\""] {
            assert!(note.contains(needle), "{needle} missing in {note}");
        }
        assert_eq!(support_note("1.34", at("2026-11-30")), None);
        assert!(support_note("1.31", at("2026-12-01")).unwrap().contains("left EKS extended support"));
    }

    #[test]
    fn the_support_type_note_says_when_eks_upgrades_by_itself() {
        use crate::SupportType;
        let note = support_type_note("1.35", SupportType::Standard, at("2026-12-07")).unwrap();
        assert!(note.contains("when standard support ends on 2027-03-27"), "{note}");
        let past = support_type_note("1.33", SupportType::Standard, at("2026-12-07")).unwrap();
        assert!(past.contains("past standard support"), "{past}");
        assert_eq!(support_type_note("1.35", SupportType::Extended, at("2026-12-07")), None);
    }

    #[test]
    fn an_upgrade_out_of_extended_support_says_what_it_saves() {
        let note = upgrade_cost_note("1.33", "1.35", at("2026-12-07")).unwrap();
        for needle in ["leaves extended support", "$0.10 instead of $0.60", "$365 less a month", "until 2027-03-27"] {
            assert!(note.contains(needle), "{needle} missing in {note}");
        }
        assert_eq!(upgrade_cost_note("1.35", "1.35", at("2026-12-07")), None);
        assert_eq!(upgrade_cost_note("1.34", "1.35", at("2026-11-01")), None, "both in standard support");
    }
}
