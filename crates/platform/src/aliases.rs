//! The domain's host names (`console.`, `api.`, `app.`, `upload.`, `enterprise.`, `trigger.`)
//! as Route 53 alias records to the load balancer the controller made for the Dify EE Ingress.
//!
//! Route 53 records carry no tags, so each alias we write gets a TXT record at the same name
//! holding `"heritage=dify-stack,stack=<stack>"` (the registry scheme of external-dns): a name
//! whose A record exists without our marker is someone else's and is never overwritten, and
//! destroy removes only names that carry our marker, each with its current exact value.

use dify_stack_core::{Context, ResourceRef};

use crate::client::{DnsApi, Record, RecordAction, fqdn};
use dify_stack_core::{AwsAt, NotOwned};

use crate::provisioner::Result;

/// The hosts under the domain that Dify EE serves (the values file's `global.*Domain` keys).
pub const HOSTS: [&str; 6] = ["console", "api", "app", "upload", "enterprise", "trigger"];

/// Where the aliases point: a load balancer's DNS name and its canonical hosted zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasTarget {
    /// The load balancer's DNS name.
    pub dns_name: String,
    /// Its `CanonicalHostedZoneId`.
    pub hosted_zone_id: String,
}

/// The ownership marker of the stack.
pub fn marker(ctx: &Context) -> String {
    format!("\"heritage=dify-stack,stack={}\"", ctx.stack())
}

fn names(domain: &str) -> Vec<String> {
    HOSTS.iter().map(|h| fqdn(&format!("{h}.{domain}"))).collect()
}

async fn ours(ctx: &Context, dns: &dyn DnsApi, zone: &str, name: &str) -> Result<bool> {
    let txt =
        dns.get_record(zone.to_owned(), name.to_owned(), "TXT".into()).await.at("ListResourceRecordSets", name)?;
    Ok(txt.is_some_and(|t| t.value == marker(ctx)))
}

/// Writes (or moves) the six aliases to `target`, with their markers, in one atomic change.
/// Refuses, writing nothing, when a name already has an A record that is not ours.
pub async fn publish(
    ctx: &Context,
    dns: &dyn DnsApi,
    zone: &str,
    domain: &str,
    target: &AliasTarget,
) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    for name in names(domain) {
        let current =
            dns.get_record(zone.to_owned(), name.clone(), "A".into()).await.at("ListResourceRecordSets", &name)?;
        if current.is_some() && !ours(ctx, dns, zone, &name).await? {
            return Err(NotOwned::new(ctx, "Route 53 A record", name).into());
        }
        let alias = Record {
            name: name.clone(),
            kind: "A".into(),
            value: fqdn(&target.dns_name),
            alias_zone: Some(target.hosted_zone_id.clone()),
        };
        if current.as_ref() != Some(&alias) {
            changes.push((RecordAction::Upsert, alias));
            changes.push((RecordAction::Upsert, Record::simple(&name, "TXT", &marker(ctx))));
        }
    }
    if !changes.is_empty() {
        dns.change_records(zone.to_owned(), changes).await.at("ChangeResourceRecordSets", zone)?;
    }
    Ok(names(domain))
}

/// Deletes the aliases that carry our marker, and the markers.
pub async fn remove(ctx: &Context, dns: &dyn DnsApi, zone: &str, domain: &str) -> Result<Vec<ResourceRef>> {
    let mut changes = Vec::new();
    let mut removed = Vec::new();
    for name in names(domain) {
        if !ours(ctx, dns, zone, &name).await? {
            continue;
        }
        if let Some(a) =
            dns.get_record(zone.to_owned(), name.clone(), "A".into()).await.at("ListResourceRecordSets", &name)?
        {
            changes.push((RecordAction::Delete, a));
        }
        changes.push((RecordAction::Delete, Record::simple(&name, "TXT", &marker(ctx))));
        removed.push(ResourceRef::new("route53:record", &name));
    }
    if !changes.is_empty() {
        dns.change_records(zone.to_owned(), changes).await.at("ChangeResourceRecordSets", zone)?;
    }
    Ok(removed)
}
