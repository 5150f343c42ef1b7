//! Validation errors: every violation of a spec at once, each with a path into the config and a
//! hint that names the fix.

use std::fmt;

use serde::Serialize;

/// One violation of a spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecError {
    /// Dotted path of the offending field, e.g. `network.private_subnets[1]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (fix: {hint})")?;
        }
        Ok(())
    }
}

/// All violations found by a `validate` call. Empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SpecErrors(Vec<SpecError>);

impl SpecErrors {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation at `path` with a hint that names the fix.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) {
        self.0.push(SpecError { path: path.into(), message: message.into(), hint: Some(hint.into()) });
    }

    /// Records a violation without a hint.
    pub fn push_bare(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(SpecError { path: path.into(), message: message.into(), hint: None });
    }

    /// Adds every violation of `other`, with `prefix.` put before each path (for nested specs).
    pub fn extend_prefixed(&mut self, prefix: &str, other: SpecErrors) {
        for mut e in other.0 {
            e.path = if prefix.is_empty() {
                e.path
            } else if e.path.is_empty() {
                prefix.to_owned()
            } else if e.path.starts_with('[') {
                format!("{prefix}{}", e.path)
            } else {
                format!("{prefix}.{}", e.path)
            };
            self.0.push(e);
        }
    }

    /// True when no violation was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of violations.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The violations in the order they were found.
    pub fn errors(&self) -> &[SpecError] {
        &self.0
    }

    /// The paths of all violations (handy in tests and for editors).
    pub fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.path.as_str()).collect()
    }

    /// `Ok(())` when empty, otherwise `Err(self)`.
    pub fn into_result(self) -> Result<(), SpecErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} invalid setting(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths_are_prefixed_and_all_errors_are_kept() {
        let mut inner = SpecErrors::new();
        inner.push("cidr", "not a CIDR", "write it as 10.0.0.0/16");
        inner.push_bare("[2]", "duplicate");
        let mut outer = SpecErrors::new();
        outer.extend_prefixed("network", inner);
        assert_eq!(outer.paths(), vec!["network.cidr", "network[2]"]);
        let text = outer.to_string();
        assert!(text.contains("network.cidr: not a CIDR (fix: write it as 10.0.0.0/16)"), "{text}");
        assert!(outer.clone().into_result().is_err());
        assert!(SpecErrors::new().into_result().is_ok());
    }
}
