//! The stack's plan: each node's changes.

use crate::Node;
use dify_stack_core::{Plan, ResourceRef};
use serde::Serialize;
use std::collections::BTreeMap;

/// One node's plan.
#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    /// The changes.
    pub plan: Plan,
    /// An upstream node is not converged yet: the plan is computed against planned ids and
    /// shows what will be created once it is (ids known after apply).
    pub upstream_pending: bool,
}

/// The plan of the whole stack.
#[derive(Debug, Clone, Serialize)]
pub struct StackPlan {
    /// What the plan cannot show as a change but the user must know (how the Kubernetes API is
    /// reached, a Kubernetes version in extended support), printed before the changes.
    pub notes: Vec<String>,
    /// Per node, in graph order.
    pub nodes: BTreeMap<Node, NodePlan>,
    /// The outputs this observation could tell (nodes whose upstream exists), for
    /// [`crate::Stack::apply_plan`].
    #[serde(skip)]
    pub(crate) observed: crate::StackOutput,
}

/// One change of a [`PlanReport`]: which node, what kind, which resource, the fields and why.
#[derive(Debug, Clone, Serialize)]
pub struct ReportedChange {
    /// The graph node that makes it.
    pub node: Node,
    /// `create`, `update`, `replace` or `delete`; an update that does more than write a setting
    /// says what: `upgrade` (a version, in place), `blue_green` (a new fleet beside the old one,
    /// then switched), `rolling` (nodes replaced one at a time) or `restart`.
    pub kind: &'static str,
    /// Its typical duration on AWS in seconds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typical_secs: Option<u64>,
    /// The resource.
    pub resource: ResourceRef,
    /// The fields that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<dify_stack_core::FieldDiff>,
    /// Why, when not obvious.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Computed against planned ids of an upstream node not converged yet.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub after_upstream: bool,
}

/// The plan as `plan --json` prints it: whether anything changes, the notes, and every change in
/// one flat list (for pipelines that check drift).
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// True when the plan has changes (`plan --detailed-exitcode` exits 2).
    pub changed: bool,
    /// Counts per kind.
    pub summary: BTreeMap<&'static str, usize>,
    /// What the plan cannot show as a change but the user must know.
    pub notes: Vec<String>,
    /// Every change, in graph order.
    pub changes: Vec<ReportedChange>,
}

/// The kind `plan --json` gives a change: its effect when it has one, else its action.
fn change_kind(c: &dify_stack_core::Change) -> &'static str {
    use dify_stack_core::{Action, Effect};
    match (c.effect, c.action) {
        (Some(Effect::Upgrade), _) => "upgrade",
        (Some(Effect::BlueGreen), _) => "blue_green",
        (Some(Effect::Rolling), _) => "rolling",
        (Some(Effect::Restart), _) => "restart",
        (None, Action::Create) => "create",
        (None, Action::Update) => "update",
        (None, Action::Replace) => "replace",
        (None, Action::Delete) => "delete",
    }
}

impl StackPlan {
    /// The plan as one flat list of changes (the CLI's `plan --json`).
    pub fn report(&self) -> PlanReport {
        let changes: Vec<ReportedChange> = self
            .nodes
            .iter()
            .flat_map(|(node, p)| {
                p.plan.changes.iter().map(move |c| ReportedChange {
                    node: *node,
                    kind: change_kind(c),
                    typical_secs: c.typical_secs,
                    resource: c.resource.clone(),
                    fields: c.fields.clone(),
                    reason: c.reason.clone(),
                    after_upstream: p.upstream_pending,
                })
            })
            .collect();
        let mut summary = BTreeMap::new();
        for c in &changes {
            *summary.entry(c.kind).or_insert(0) += 1;
        }
        PlanReport { changed: !changes.is_empty(), summary, notes: self.notes.clone(), changes }
    }

    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.nodes.values().all(|p| p.plan.is_empty())
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.nodes.values().map(|p| p.plan.changes.len()).sum()
    }
}

impl std::fmt::Display for StackPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for note in &self.notes {
            writeln!(f, "Note: {note}")?;
        }
        if !self.notes.is_empty() {
            writeln!(f)?;
        }
        for (node, p) in &self.nodes {
            if p.plan.is_empty() {
                continue;
            }
            writeln!(
                f,
                "# {node}{}",
                if p.upstream_pending { " (after its upstream; ids known after apply)" } else { "" }
            )?;
            // The node's changes without its own summary line (one total follows).
            let text = p.plan.to_string();
            for line in text.lines().filter(|l| !l.starts_with("Plan:") && !l.is_empty()) {
                writeln!(f, "{line}")?;
            }
            writeln!(f)?;
        }
        let s = self.nodes.values().fold((0, 0, 0, 0), |acc, p| {
            let x = p.plan.summary();
            (acc.0 + x.create, acc.1 + x.update, acc.2 + x.replace, acc.3 + x.delete)
        });
        if self.is_empty() {
            write!(f, "No changes. The stack matches the configuration.")
        } else {
            write!(f, "Plan: {} to add, {} to change, {} to replace, {} to destroy.", s.0, s.1, s.2, s.3)
        }
    }
}
