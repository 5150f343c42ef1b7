//! The datastores tier's security controls (S3.1-4, RDS.1-5, EC.1-4, OS.1-6 of the facade's
//! report): pure functions of what the tier's clients observe, and [`audit`], the read that feeds
//! them. A store that does not exist fails its controls (a stack missing its database is broken,
//! not compliant); prod-only controls are not applicable on a test stack.

use dify_stack_core::audit::{Verdict, Verdicts, all_missing};
use dify_stack_core::ids::BucketName;
use dify_stack_core::{AwsError, Context, Environment};
use serde_json::Value;

use crate::client::{
    BucketInfo, DbClusterInfo, DbInstanceInfo, DomainInfo, ElastiCacheApi, OpenSearchApi, RdsApi, ReplicationGroupInfo,
    S3Api,
};
use crate::names;

/// Reads the four stores through the tier's clients and checks them.
pub async fn audit<C>(ctx: &Context, client: &C) -> Result<Verdicts, AwsError>
where
    C: S3Api + RdsApi + ElastiCacheApi + OpenSearchApi,
{
    let env = ctx.environment();
    let mut verdicts = bucket(S3Api::describe(client, BucketName::new(names::bucket(ctx))).await?.as_ref());
    let cluster = names::AuroraNames::of(ctx).cluster;
    let aurora_state = match RdsApi::describe_cluster(client, cluster.clone()).await? {
        Some(c) => Some((RdsApi::list_instances(client, cluster).await?, c)),
        None => None,
    };
    verdicts.extend(aurora(aurora_state.as_ref().map(|(i, c)| (c, i.as_slice())), env));
    verdicts.extend(redis(ElastiCacheApi::describe(client, names::redis(ctx)).await?.as_ref(), env));
    verdicts.extend(opensearch(OpenSearchApi::describe(client, names::search_domain(ctx)).await?.as_ref()));
    Ok(verdicts)
}

/// S3.1-4 of the storage bucket.
pub fn bucket(b: Option<&BucketInfo>) -> Verdicts {
    let Some(b) = b else { return all_missing(&["S3.1", "S3.2", "S3.3", "S3.4"], "the storage bucket") };
    let policy: Option<Value> = b.policy.as_deref().and_then(|t| serde_json::from_str(t).ok());
    // The TLS-only statement of STACK.md: Deny when aws:SecureTransport is false (S3 user guide,
    // "Enforce encryption in transit").
    let denies_plain_http =
        policy.as_ref().is_some_and(|p| {
            p["Statement"].as_array().into_iter().flatten().any(|s| {
                s["Effect"] == "Deny" && s["Condition"]["Bool"]["aws:SecureTransport"].as_str() == Some("false")
            })
        });
    vec![
        ("S3.1", Verdict::check(b.public_access_blocked, || "public-access block incomplete".to_owned())),
        ("S3.2", Verdict::check(b.encryption.is_some(), || "no default encryption".to_owned())),
        ("S3.3", Verdict::check(denies_plain_http, || "no statement denies aws:SecureTransport = false".to_owned())),
        ("S3.4", Verdict::check(b.versioning, || "versioning is not enabled".to_owned())),
    ]
}

/// RDS.1-5 of the Aurora cluster and its instances.
pub fn aurora(state: Option<(&DbClusterInfo, &[DbInstanceInfo])>, env: Environment) -> Verdicts {
    let Some((c, instances)) = state else {
        return all_missing(&["RDS.1", "RDS.2", "RDS.3", "RDS.4", "RDS.5"], "the Aurora cluster");
    };
    let prod = env == Environment::Prod;
    let public: Vec<&str> = instances.iter().filter(|i| i.public).map(|i| i.id.as_str()).collect();
    let min_days = if prod { 7 } else { 1 };
    vec![
        ("RDS.1", Verdict::check(c.encrypted, || "StorageEncrypted is false".to_owned())),
        ("RDS.2", Verdict::check(public.is_empty(), || format!("publicly accessible: {public:?}"))),
        ("RDS.3", Verdict::check(c.master_secret_arn.is_some(), || "no RDS-managed master user secret".to_owned())),
        (
            "RDS.4",
            if prod {
                Verdict::check(c.deletion_protection, || "deletion protection off".to_owned())
            } else {
                Verdict::not_applicable("test profile")
            },
        ),
        (
            "RDS.5",
            Verdict::check(c.backup_retention_days >= min_days, || {
                format!("backup retention {} day(s), need >= {min_days}", c.backup_retention_days)
            }),
        ),
    ]
}

/// EC.1-4 of the Redis replication group.
pub fn redis(g: Option<&ReplicationGroupInfo>, env: Environment) -> Verdicts {
    let Some(g) = g else { return all_missing(&["EC.1", "EC.2", "EC.3", "EC.4"], "the Redis replication group") };
    vec![
        ("EC.1", Verdict::check(g.at_rest_encryption, || "at-rest encryption off".to_owned())),
        ("EC.2", Verdict::check(g.transit_encryption, || "in-transit encryption off".to_owned())),
        ("EC.3", Verdict::check(g.auth_token_enabled, || "no AUTH token".to_owned())),
        (
            "EC.4",
            if env == Environment::Prod {
                Verdict::check(g.multi_az && g.automatic_failover, || "not Multi-AZ with automatic failover".to_owned())
            } else {
                Verdict::not_applicable("test profile")
            },
        ),
    ]
}

/// OS.1-6 of the OpenSearch domain.
pub fn opensearch(d: Option<&DomainInfo>) -> Verdicts {
    let Some(d) = d else {
        return all_missing(&["OS.1", "OS.2", "OS.3", "OS.4", "OS.5", "OS.6"], "the OpenSearch domain");
    };
    let in_vpc = !d.subnet_ids.is_empty() && d.public_endpoint.is_none();
    let tls = d.tls_policy.clone().unwrap_or_default();
    let https = d.enforce_https && tls.contains("TLS-1-2");
    // Principal `*` is what STACK.md asks for (Dify authenticates with basic auth as the FGAC
    // master user; an IAM principal would demand SigV4). What must not happen is an Allow on
    // anything beyond `arn:...:domain/<name>/*`.
    let policy: Value = d.access_policy.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null);
    let own = format!("{}/*", d.arn);
    let wide = policy["Statement"].as_array().into_iter().flatten().filter(|s| s["Effect"] == "Allow").any(|s| {
        let r = &s["Resource"];
        let resources: Vec<&Value> = r.as_array().map(|a| a.iter().collect()).unwrap_or_else(|| vec![r]);
        resources.iter().any(|x| x.as_str() != Some(own.as_str()))
    });
    vec![
        ("OS.1", Verdict::check(in_vpc, || format!("public endpoint {:?}", d.public_endpoint))),
        ("OS.2", Verdict::check(d.at_rest_encryption, || "at-rest encryption off".to_owned())),
        ("OS.3", Verdict::check(d.node_to_node, || "node-to-node encryption off".to_owned())),
        ("OS.4", Verdict::check(https, || format!("enforce_https {:?}, policy {tls:?}", d.enforce_https))),
        ("OS.5", Verdict::check(d.fine_grained, || "fine-grained access control off".to_owned())),
        ("OS.6", Verdict::check(!wide, || format!("an Allow statement reaches beyond {own}"))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(v: &Verdicts) -> Vec<&'static str> {
        v.iter().filter(|(_, v)| matches!(v, Verdict::Fail(_))).map(|(id, _)| *id).collect()
    }

    #[test]
    fn each_weakened_bucket_setting_fails_its_own_control() {
        let good = BucketInfo {
            versioning: true,
            encryption: Some(("AES256".into(), None)),
            public_access_blocked: true,
            policy: Some(
                r#"{"Statement":[{"Effect":"Deny","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#.into(),
            ),
            ..Default::default()
        };
        assert!(failed(&bucket(Some(&good))).is_empty());
        let cases = [
            ("S3.1", BucketInfo { public_access_blocked: false, ..good.clone() }),
            ("S3.2", BucketInfo { encryption: None, ..good.clone() }),
            ("S3.3", BucketInfo { policy: Some(r#"{"Statement":[]}"#.into()), ..good.clone() }),
            ("S3.4", BucketInfo { versioning: false, ..good.clone() }),
        ];
        for (id, weak) in cases {
            assert_eq!(failed(&bucket(Some(&weak))), [id]);
        }
        assert_eq!(failed(&bucket(None)), ["S3.1", "S3.2", "S3.3", "S3.4"]);
    }

    #[test]
    fn aurora_and_redis_controls_follow_the_profile() {
        let c = DbClusterInfo {
            encrypted: true,
            backup_retention_days: 7,
            deletion_protection: true,
            master_secret_arn: Some("arn:secret".into()),
            ..Default::default()
        };
        let inst = [DbInstanceInfo { id: "i-1".into(), ..Default::default() }];
        assert!(failed(&aurora(Some((&c, &inst)), Environment::Prod)).is_empty());
        let test = DbClusterInfo { backup_retention_days: 1, deletion_protection: false, ..c.clone() };
        let v = aurora(Some((&test, &inst)), Environment::Test);
        assert!(failed(&v).is_empty() && v[3].1 == Verdict::not_applicable("test profile"));
        assert_eq!(failed(&aurora(Some((&test, &inst)), Environment::Prod)), ["RDS.4", "RDS.5"]);
        let public = [DbInstanceInfo { public: true, ..inst[0].clone() }];
        assert_eq!(failed(&aurora(Some((&c, &public)), Environment::Prod)), ["RDS.2"]);
        let unmanaged = DbClusterInfo { master_secret_arn: None, encrypted: false, ..c };
        assert_eq!(failed(&aurora(Some((&unmanaged, &inst)), Environment::Prod)), ["RDS.1", "RDS.3"]);

        let g = ReplicationGroupInfo {
            at_rest_encryption: true,
            transit_encryption: true,
            auth_token_enabled: true,
            multi_az: true,
            automatic_failover: true,
            ..Default::default()
        };
        assert!(failed(&redis(Some(&g), Environment::Prod)).is_empty());
        let single = ReplicationGroupInfo { multi_az: false, ..g.clone() };
        assert_eq!(failed(&redis(Some(&single), Environment::Prod)), ["EC.4"]);
        assert!(failed(&redis(Some(&single), Environment::Test)).is_empty());
        let open = ReplicationGroupInfo { auth_token_enabled: false, transit_encryption: false, ..g };
        assert_eq!(failed(&redis(Some(&open), Environment::Test)), ["EC.2", "EC.3"]);
    }

    #[test]
    fn opensearch_controls() {
        let arn = "arn:aws:es:us-east-1:1:domain/d";
        let good = DomainInfo {
            arn: arn.into(),
            subnet_ids: vec!["subnet-1".into()],
            at_rest_encryption: true,
            node_to_node: true,
            enforce_https: true,
            tls_policy: Some("Policy-Min-TLS-1-2-2019-07".into()),
            fine_grained: true,
            access_policy: Some(format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"*"}},"Resource":"{arn}/*"}}]}}"#
            )),
            ..Default::default()
        };
        assert!(failed(&opensearch(Some(&good))).is_empty());
        let cases = [
            ("OS.1", DomainInfo { public_endpoint: Some("search-d.es.amazonaws.com".into()), ..good.clone() }),
            ("OS.2", DomainInfo { at_rest_encryption: false, ..good.clone() }),
            ("OS.3", DomainInfo { node_to_node: false, ..good.clone() }),
            ("OS.4", DomainInfo { tls_policy: Some("Policy-Min-TLS-1-0-2019-07".into()), ..good.clone() }),
            ("OS.5", DomainInfo { fine_grained: false, ..good.clone() }),
            (
                "OS.6",
                DomainInfo {
                    access_policy: Some(r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#.into()),
                    ..good.clone()
                },
            ),
        ];
        for (id, weak) in cases {
            assert_eq!(failed(&opensearch(Some(&weak))), [id]);
        }
        assert_eq!(failed(&opensearch(None)).len(), 6);
    }
}
