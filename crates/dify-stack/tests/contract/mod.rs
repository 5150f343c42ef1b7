//! The Dify EE chart's contract, shared by the tests that render values: the chart 3.9.1's own
//! key tree (`tests/data/dify-ee-3.9.1-chart-keys.txt`) and, apart from it, the keys dify-stack
//! sets (`tests/data/dify-ee-values-keys.txt`).

/// The chart's key tree: exact paths, and prefixes (`a.b.*`) under which any path is the chart's.
fn chart_tree() -> (Vec<&'static str>, Vec<&'static str>) {
    let text = include_str!("../data/dify-ee-3.9.1-chart-keys.txt");
    let lines = text.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty());
    let (open, exact): (Vec<&str>, Vec<&str>) = lines.partition(|l| l.ends_with(".*"));
    (exact, open.into_iter().map(|l| l.trim_end_matches('*')).collect())
}

/// True when `path` is a key of the chart 3.9.1.
pub(crate) fn in_chart(path: &str) -> bool {
    let (exact, open) = chart_tree();
    exact.contains(&path)
        || open.iter().any(|prefix| {
            let base = prefix.trim_end_matches('.');
            path.starts_with(prefix) || path.strip_prefix(base).is_some_and(|rest| rest.starts_with("[]"))
        })
}

/// The keys dify-stack sets: (path, marker) with marker `!` (always), `@` (arm64 nodes only) or
/// ' ' (with a domain).
pub(crate) fn keys_we_set() -> Vec<(&'static str, char)> {
    include_str!("../data/dify-ee-values-keys.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| match l.chars().next() {
            Some(m @ ('!' | '@')) => (&l[1..], m),
            _ => (l, ' '),
        })
        .collect()
}

/// Checks a rendered values file: every key is in the chart's tree; every key that must be
/// there is (the domain's with a domain, the arm64 tags exactly on arm64 nodes).
pub(crate) fn check_values_contract(values: &str, with_domain: bool, arm64: bool) {
    let rendered = dify_stack::output::value_paths(values);
    assert!(!rendered.is_empty(), "nothing rendered:\n{values}");
    let outside: Vec<&String> = rendered.iter().filter(|p| !in_chart(p)).collect();
    assert!(outside.is_empty(), "keys outside the chart 3.9.1's tree: {outside:?}");
    let missing: Vec<&str> = keys_we_set()
        .into_iter()
        .filter(|(_, m)| match m {
            '!' => true,
            '@' => arm64,
            _ => with_domain,
        })
        .map(|(k, _)| k)
        .filter(|k| !rendered.iter().any(|p| p == k))
        .collect();
    assert!(missing.is_empty(), "keys missing: {missing:?}");
    let arm_tags: Vec<&str> = keys_we_set().into_iter().filter(|(_, m)| *m == '@').map(|(k, _)| k).collect();
    let tags: Vec<&String> = rendered.iter().filter(|p| p.ends_with(".image.tag")).collect();
    if arm64 {
        assert_eq!(tags.len(), arm_tags.len(), "exactly the six amd64-only components get a tag: {tags:?}");
        assert!(values.matches("-arm64").count() == arm_tags.len(), "{values}");
    } else {
        assert!(tags.is_empty(), "x86_64 nodes run the chart's tags: {tags:?}");
    }
}
