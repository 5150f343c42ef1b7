//! Security audit of a live stack: describe calls checked against a table of controls, each
//! with an id, a one-line rationale and a verdict (pass, fail with the evidence, or not
//! applicable). Read-only.

use serde::Serialize;

mod checks;
pub use checks::audit;

/// A control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Control {
    /// Stable id, e.g. `S3.1`.
    pub id: &'static str,
    /// What is checked and why.
    pub rationale: &'static str,
}

/// The controls, in report order.
pub const CONTROLS: &[Control] = &[
    Control { id: "S3.1", rationale: "storage bucket blocks all public access (all four public-access blocks)" },
    Control { id: "S3.2", rationale: "storage bucket encrypts objects by default (SSE-S3 or SSE-KMS)" },
    Control { id: "S3.3", rationale: "storage bucket policy denies requests without TLS" },
    Control { id: "S3.4", rationale: "storage bucket keeps object versions (recovery from overwrite or delete)" },
    Control { id: "RDS.1", rationale: "Aurora storage is encrypted" },
    Control { id: "RDS.2", rationale: "no Aurora instance is publicly accessible" },
    Control { id: "RDS.3", rationale: "the master password is managed by RDS in Secrets Manager" },
    Control { id: "RDS.4", rationale: "prod Aurora has deletion protection" },
    Control { id: "RDS.5", rationale: "Aurora keeps automated backups (>= 1 day; prod >= 7 days)" },
    Control { id: "EC.1", rationale: "Redis encrypts data at rest" },
    Control { id: "EC.2", rationale: "Redis encrypts data in transit (TLS)" },
    Control { id: "EC.3", rationale: "Redis requires an AUTH token" },
    Control { id: "EC.4", rationale: "prod Redis is Multi-AZ with automatic failover" },
    Control { id: "OS.1", rationale: "OpenSearch domain is inside the VPC (no public endpoint)" },
    Control { id: "OS.2", rationale: "OpenSearch encrypts data at rest" },
    Control { id: "OS.3", rationale: "OpenSearch encrypts node-to-node traffic" },
    Control { id: "OS.4", rationale: "OpenSearch enforces HTTPS with TLS 1.2 or later" },
    Control { id: "OS.5", rationale: "OpenSearch fine-grained access control with an internal user database" },
    Control {
        id: "OS.6",
        rationale: "OpenSearch access policy allows only this domain's paths (principal `*` is gated by VPC, security group and fine-grained access control)",
    },
    Control { id: "EKS.1", rationale: "the Kubernetes API has a private endpoint" },
    Control { id: "EKS.2", rationale: "the public Kubernetes API endpoint is off or not open to 0.0.0.0/0" },
    Control { id: "EKS.3", rationale: "all five control-plane log types are enabled" },
    Control { id: "EKS.4", rationale: "Kubernetes secrets are envelope-encrypted with KMS" },
    Control { id: "EKS.5", rationale: "nodes require IMDSv2 (launch template http_tokens = required)" },
    Control { id: "ECR.1", rationale: "both repositories scan images on push" },
    Control { id: "IAM.1", rationale: "every IRSA role trusts only named service accounts (sub) for STS (aud)" },
    Control { id: "IAM.2", rationale: "no IRSA policy grants a wildcard action" },
    Control { id: "IAM.3", rationale: "no IRSA policy grants on `*` resources except ecr:GetAuthorizationToken" },
    Control {
        id: "PLT.1",
        rationale: "each platform add-on's IRSA role (load balancer controller, cluster autoscaler) trusts only its own service account for STS",
    },
    Control {
        id: "PLT.2",
        rationale: "each platform add-on's IRSA role has exactly its add-on's published policy (nothing added)",
    },
    Control { id: "EC2.1", rationale: "no security group of the stack admits 0.0.0.0/0 or ::/0" },
    Control { id: "EC2.2", rationale: "datastores admit only the cluster's security groups, on their own port" },
];

pub use dify_stack_core::audit::Verdict;

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The control.
    pub control: Control,
    /// Its verdict.
    pub verdict: Verdict,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// One finding per control, in [`CONTROLS`] order.
    pub findings: Vec<Finding>,
}

impl AuditReport {
    /// Ids of failed controls.
    pub fn failed(&self) -> Vec<&'static str> {
        self.findings.iter().filter(|f| matches!(f.verdict, Verdict::Fail(_))).map(|f| f.control.id).collect()
    }

    /// True when no control failed.
    pub fn passed(&self) -> bool {
        self.failed().is_empty()
    }
}

impl std::fmt::Display for AuditReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "| control | result | rationale | detail |\n|---|---|---|---|")?;
        for x in &self.findings {
            let (r, d) = match &x.verdict {
                Verdict::Pass => ("pass", String::new()),
                Verdict::Fail(d) => ("FAIL", d.clone()),
                Verdict::NotApplicable(d) => ("n/a", d.clone()),
            };
            writeln!(f, "| {} | {r} | {} | {d} |", x.control.id, x.control.rationale)?;
        }
        let failed = self.failed();
        write!(
            f,
            "\n{} controls, {} failed{}",
            self.findings.len(),
            failed.len(),
            if failed.is_empty() { String::new() } else { format!(": {}", failed.join(", ")) }
        )
    }
}
