//! Plans: what `apply` would change, resource by resource and field by field.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Tags;

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It is missing and will be created (`+`).
    Create,
    /// It exists and will be modified in place (`~`).
    Update,
    /// An immutable setting drifted: delete and re-create (`-/+`); refused unless allowed.
    Replace,
    /// It will be deleted (`-`).
    Delete,
}

impl Action {
    /// The terraform-like symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// What an in-place update does to the running resource beyond writing a setting, so a plan
/// can warn before it runs (and `plan --json` can name the kind of change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// A version upgrade in place (a Kubernetes minor, an engine version): not reversible.
    Upgrade,
    /// A new fleet is built beside the old one and traffic switched (OpenSearch's blue/green
    /// deployment); the old one is removed after.
    BlueGreen,
    /// The service restarts (a short outage, or a failover in a multi-AZ store).
    Restart,
    /// Nodes are replaced one at a time (a node group's rolling update).
    Rolling,
}

impl Effect {
    /// How a plan names it.
    pub fn label(self) -> &'static str {
        match self {
            Effect::Upgrade => "upgrade",
            Effect::BlueGreen => "blue/green",
            Effect::Restart => "restart",
            Effect::Rolling => "rolling",
        }
    }
}

/// Names a resource: its kind (e.g. `ec2:nat-gateway`), its deterministic name, and its id when
/// it exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceRef {
    /// Service and resource type, e.g. `ec2:vpc`.
    pub kind: String,
    /// The deterministic name (usually the `Name` tag).
    pub name: String,
    /// The AWS id or ARN, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
}

impl ResourceRef {
    /// A resource that does not exist yet.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> ResourceRef {
        ResourceRef { kind: kind.into(), name: name.into(), id: None }
    }

    /// The same reference with a known id.
    pub fn with_id(mut self, id: impl Into<String>) -> ResourceRef {
        self.id = Some(id.into());
        self
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)?;
        if let Some(id) = &self.id {
            write!(f, " ({id})")?;
        }
        Ok(())
    }
}

/// One field that differs. `None` means absent (before a create, after a delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// Dotted path of the field, e.g. `tags.Name` or `routes[0.0.0.0/0]`.
    pub path: String,
    /// The current value.
    pub before: Option<String>,
    /// The desired value.
    pub after: Option<String>,
}

impl FieldDiff {
    /// A field that changes from `before` to `after`.
    pub fn new(path: impl Into<String>, before: Option<impl ToString>, after: Option<impl ToString>) -> FieldDiff {
        FieldDiff { path: path.into(), before: before.map(|v| v.to_string()), after: after.map(|v| v.to_string()) }
    }
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What happens.
    pub action: Action,
    /// To which resource.
    pub resource: ResourceRef,
    /// The fields that differ (for Create: the settings that will be sent).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub fields: Vec<FieldDiff>,
    /// Why, when not obvious (e.g. which immutable field forces a replacement).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// What the change does to the running resource, when more than a settings write.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub effect: Option<Effect>,
    /// Its typical duration in seconds on AWS (from the shared durations file), when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub typical_secs: Option<u64>,
}

/// Tags of ours missing or different on a resource, as a plan shows them: (key, before, after).
pub type TagDrift = Vec<(String, Option<String>, String)>;

/// The tags of `want` that `have` lacks or holds with another value.
pub fn tag_drift(want: &Tags, have: &Tags) -> TagDrift {
    want.iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), have.get(k).cloned(), v.clone()))
        .collect()
}

/// The tags a drift writes: key -> the wanted value.
pub fn drift_tags(drift: &TagDrift) -> Tags {
    drift.iter().map(|(k, _, v)| (k.clone(), v.clone())).collect()
}

impl Change {
    /// One field `tags.<key>` per drifted tag.
    pub fn tag_fields(self, drift: &TagDrift) -> Change {
        drift.iter().fold(self, |c, (k, before, after)| c.field(format!("tags.{k}"), before.as_ref(), Some(after)))
    }

    /// A change without field details.
    pub fn new(action: Action, resource: ResourceRef) -> Change {
        Change { action, resource, fields: Vec::new(), reason: None, effect: None, typical_secs: None }
    }

    /// Adds a field difference.
    pub fn field(
        mut self,
        path: impl Into<String>,
        before: Option<impl ToString>,
        after: Option<impl ToString>,
    ) -> Change {
        self.fields.push(FieldDiff::new(path, before, after));
        self
    }

    /// Sets the reason.
    pub fn because(mut self, reason: impl Into<String>) -> Change {
        self.reason = Some(reason.into());
        self
    }

    /// Marks what the change does to the running resource.
    pub fn effect(mut self, effect: Effect) -> Change {
        self.effect = Some(effect);
        self
    }

    /// Sets its typical duration on AWS.
    pub fn typically(mut self, duration: std::time::Duration) -> Change {
        self.typical_secs = Some(duration.as_secs());
        self
    }
}

/// An ordered list of changes. Empty means converged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The changes, in the order apply performs them.
    pub changes: Vec<Change>,
}

/// Counts per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// Resources to create.
    pub create: usize,
    /// Resources to update in place.
    pub update: usize,
    /// Resources to replace.
    pub replace: usize,
    /// Resources to delete.
    pub delete: usize,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Plan {
        Plan::default()
    }

    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Appends a change.
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// Appends all changes of another plan.
    pub fn extend(&mut self, other: Plan) {
        self.changes.extend(other.changes);
    }

    /// The changes with a given action.
    pub fn with_action(&self, action: Action) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.action == action)
    }

    /// True when a change would replace a resource.
    pub fn has_replacements(&self) -> bool {
        self.with_action(Action::Replace).next().is_some()
    }

    /// Counts per action.
    pub fn summary(&self) -> PlanSummary {
        let mut s = PlanSummary::default();
        for c in &self.changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
            }
        }
        s
    }
}

impl FromIterator<Change> for Plan {
    fn from_iter<I: IntoIterator<Item = Change>>(changes: I) -> Plan {
        Plan { changes: changes.into_iter().collect() }
    }
}

/// A tier's typed change: its `diff` computes them from one observation, its `apply` executes
/// exactly them, and a plan shows each as one [`Change`], so what a plan shows and what apply
/// does cannot drift apart.
pub trait Planned {
    /// How a plan shows this change.
    fn change(&self) -> Change;

    /// The plan of a list of typed changes, in order.
    fn plan(changes: &[Self]) -> Plan
    where
        Self: Sized,
    {
        changes.iter().map(Planned::change).collect()
    }
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "(none)".to_owned(),
    }
}

/// A duration in whole minutes (at least one), as a plan shows it.
fn minutes(secs: u64) -> String {
    format!("{} min", secs.div_ceil(60).max(1))
}

impl fmt::Display for Plan {
    /// Renders the plan like `terraform plan`:
    ///
    /// ```text
    ///   + ec2:vpc dify-test-vpc
    ///       cidr_block: (none) -> "10.0.0.0/16"
    ///
    /// Plan: 1 to create, 0 to update, 0 to replace, 0 to delete.
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "No changes. The infrastructure matches the configuration.");
        }
        for c in &self.changes {
            write!(f, "{:>5} {}", c.action.symbol(), c.resource)?;
            if let Some(reason) = &c.reason {
                write!(f, "  # {reason}")?;
            }
            match (c.effect, c.typical_secs) {
                (Some(e), Some(secs)) => write!(f, "  [{}, typically {}]", e.label(), minutes(secs))?,
                (Some(e), None) => write!(f, "  [{}]", e.label())?,
                (None, Some(secs)) => write!(f, "  [typically {}]", minutes(secs))?,
                (None, None) => {}
            }
            writeln!(f)?;
            for d in &c.fields {
                writeln!(f, "        {}: {} -> {}", d.path, show(&d.before), show(&d.after))?;
            }
        }
        let s = self.summary();
        writeln!(
            f,
            "\nPlan: {} to create, {} to update, {} to replace, {} to delete.",
            s.create, s.update, s.replace, s.delete
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Plan {
        let mut plan = Plan::new();
        plan.push(Change::new(Action::Create, ResourceRef::new("ec2:vpc", "dify-test-vpc")).field(
            "cidr_block",
            None::<String>,
            Some("10.0.0.0/16"),
        ));
        plan.push(
            Change::new(Action::Update, ResourceRef::new("ec2:subnet", "dify-test-private-1").with_id("subnet-1"))
                .field("tags.kubernetes.io/role/internal-elb", None::<String>, Some("1")),
        );
        plan.push(
            Change::new(Action::Replace, ResourceRef::new("ec2:subnet", "dify-test-public-1").with_id("subnet-2"))
                .field("cidr_block", Some("10.0.9.0/24"), Some("10.0.1.0/24"))
                .because("cidr_block cannot change in place"),
        );
        plan.push(Change::new(Action::Delete, ResourceRef::new("ec2:nat-gateway", "dify-test-nat-3").with_id("nat-3")));
        plan
    }

    #[test]
    fn tag_drift_lists_missing_and_different_tags_and_writes_the_wanted_values() {
        let want = Tags::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]);
        let have = Tags::from([("b".to_owned(), "0".to_owned()), ("c".to_owned(), "9".to_owned())]);
        let drift = tag_drift(&want, &have);
        assert_eq!(
            drift,
            [("a".to_owned(), None, "1".to_owned()), ("b".to_owned(), Some("0".to_owned()), "2".to_owned())]
        );
        assert_eq!(drift_tags(&drift), want, "someone else's tag c is neither removed nor rewritten");
        let c = Change::new(Action::Update, ResourceRef::new("k", "n")).tag_fields(&drift);
        let fields: Vec<(&str, Option<&str>, Option<&str>)> =
            c.fields.iter().map(|f| (f.path.as_str(), f.before.as_deref(), f.after.as_deref())).collect();
        assert_eq!(fields, [("tags.a", None, Some("1")), ("tags.b", Some("0"), Some("2"))]);
        assert!(tag_drift(&want, &want).is_empty());
    }

    #[test]
    fn an_effect_and_a_typical_duration_are_shown_beside_the_change() {
        let mut plan = Plan::new();
        plan.push(
            Change::new(Action::Update, ResourceRef::new("opensearch:domain", "d"))
                .field("engine_version", Some("OpenSearch_2.17"), Some("OpenSearch_2.19"))
                .effect(Effect::BlueGreen)
                .typically(std::time::Duration::from_secs(2700)),
        );
        plan.push(Change::new(Action::Update, ResourceRef::new("eks:cluster", "c")).effect(Effect::Upgrade));
        let text = plan.to_string();
        assert!(text.contains("    ~ opensearch:domain d  [blue/green, typically 45 min]\n"), "{text}");
        assert!(text.contains("    ~ eks:cluster c  [upgrade]\n"), "{text}");
        let json = serde_json::to_value(&plan.changes[0]).unwrap();
        assert_eq!(json["effect"], "blue_green");
        assert_eq!(json["typical_secs"], 2700);
        assert!(serde_json::to_value(&plan.changes[1]).unwrap().get("typical_secs").is_none());
    }

    #[test]
    fn renders_like_terraform() {
        let golden = concat!(
            "    + ec2:vpc dify-test-vpc\n",
            "        cidr_block: (none) -> \"10.0.0.0/16\"\n",
            "    ~ ec2:subnet dify-test-private-1 (subnet-1)\n",
            "        tags.kubernetes.io/role/internal-elb: (none) -> \"1\"\n",
            "  -/+ ec2:subnet dify-test-public-1 (subnet-2)  # cidr_block cannot change in place\n",
            "        cidr_block: \"10.0.9.0/24\" -> \"10.0.1.0/24\"\n",
            "    - ec2:nat-gateway dify-test-nat-3 (nat-3)\n",
            "\n",
            "Plan: 1 to create, 1 to update, 1 to replace, 1 to delete.\n",
        );
        assert_eq!(sample().to_string(), golden);
        assert_eq!(Plan::new().to_string(), "No changes. The infrastructure matches the configuration.\n");
    }

    #[test]
    fn round_trips_through_json() {
        let plan = sample();
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["changes"][0]["action"], "create");
        assert_eq!(json["changes"][0]["fields"][0]["after"], "10.0.0.0/16");
        assert!(json["changes"][0]["resource"].get("id").is_none());
        let back: Plan = serde_json::from_value(json).unwrap();
        assert_eq!(back, plan);
        assert!(back.has_replacements());
        assert_eq!(back.summary(), PlanSummary { create: 1, update: 1, replace: 1, delete: 1 });
    }
}
