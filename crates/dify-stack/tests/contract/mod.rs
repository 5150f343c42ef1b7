//! The Dify EE chart's key list, shared by the tests that render values.

/// Checks a rendered values file against the chart's key list (`tests/data`).
pub(crate) fn check_values_contract(values: &str, with_domain: bool) {
    let reference = include_str!("../data/dify-ee-values-keys.txt");
    let keys: Vec<(&str, bool)> = reference
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| (l.trim_start_matches('!'), l.starts_with('!')))
        .collect();
    let rendered = dify_stack::output::value_paths(values);
    let unknown: Vec<&String> = rendered.iter().filter(|p| !keys.iter().any(|(k, _)| k == p)).collect();
    assert!(unknown.is_empty(), "keys the chart does not have: {unknown:?}");
    let missing: Vec<&str> = keys
        .iter()
        .filter(|(k, required)| (*required || with_domain) && !rendered.iter().any(|p| p == k))
        .map(|(k, _)| *k)
        .collect();
    assert!(missing.is_empty(), "keys missing: {missing:?}");
}
