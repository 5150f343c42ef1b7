//! The security audit's vocabulary, shared by the tiers (each audits its own resources as a pure
//! function of what it observed) and the facade (which runs them and writes the report).

use serde::Serialize;

/// A control's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "detail", rename_all = "snake_case")]
pub enum Verdict {
    /// Holds.
    Pass,
    /// Does not hold; the evidence.
    Fail(String),
    /// Does not apply: a prod-only control on a test stack. (A control whose resource does not
    /// exist fails: a stack missing its database is broken, not compliant.)
    NotApplicable(String),
}

impl Verdict {
    /// Pass when `ok`, otherwise a failure with the evidence `fail` gives.
    pub fn check(ok: bool, fail: impl FnOnce() -> String) -> Verdict {
        if ok { Verdict::Pass } else { Verdict::Fail(fail()) }
    }

    /// The resource the control is about does not exist: a failure.
    pub fn missing(what: &str) -> Verdict {
        Verdict::Fail(format!("{what} does not exist"))
    }

    /// The control does not apply, and why.
    pub fn not_applicable(why: &str) -> Verdict {
        Verdict::NotApplicable(why.to_owned())
    }
}

/// Verdicts by control id, in the order the controls are checked.
pub type Verdicts = Vec<(&'static str, Verdict)>;

/// Every control of `ids` fails because `what` does not exist.
pub fn all_missing(ids: &[&'static str], what: &str) -> Verdicts {
    ids.iter().map(|id| (*id, Verdict::missing(what))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_their_json() {
        assert_eq!(Verdict::check(true, || unreachable!()), Verdict::Pass);
        assert_eq!(Verdict::check(false, || "off".into()), Verdict::Fail("off".into()));
        assert_eq!(
            all_missing(&["A.1", "A.2"], "the bucket")[1],
            ("A.2", Verdict::Fail("the bucket does not exist".into()))
        );
        assert_eq!(serde_json::to_string(&Verdict::Fail("x".into())).unwrap(), r#"{"verdict":"fail","detail":"x"}"#);
        assert_eq!(serde_json::to_string(&Verdict::Pass).unwrap(), r#"{"verdict":"pass"}"#);
    }
}
