"""Extends moto 5.2.5 with what dify-stack needs and real AWS does.

EKS:

Loaded by launch.py before the server starts. Adds, per account/region/cluster:
  * managed add-ons: CreateAddon, DescribeAddon, ListAddons, UpdateAddon, DeleteAddon and
    DescribeAddonVersions (a fixed catalogue with one default version per Kubernetes version);
  * access entries: CreateAccessEntry, DescribeAccessEntry, ListAccessEntries,
    DeleteAccessEntry, AssociateAccessPolicy, ListAssociatedAccessPolicies;
  * on CreateCluster: the accessConfig the request asked for (moto drops it) and an
    EKS-managed cluster security group in the cluster's VPC (moto has none), which is deleted
    with the cluster, as in AWS;
  * DeleteCluster removes the cluster's add-ons and access entries with it, as AWS does.
Everything is ACTIVE at once, like the rest of moto. Errors use EKS's codes.

RDS: the Data API flag is stored as given (moto only allows it for Serverless v1 engine
versions; AWS supports it for Serverless v2 PostgreSQL 13.12+), EnableHttpEndpoint exists,
and the Data API keeps a per-cluster list of databases: `CREATE DATABASE "x"` adds one and
`SELECT datname FROM pg_database` lists them.

ECR: an empty image scanning configuration turns scan on push off (as in AWS).

S3: GetBucketVersioning answers with S3's root element (moto's is malformed).

ElastiCache: DeleteReplicationGroup removes the group and its member clusters (moto leaves
them `deleting` forever; AWS removes them after a while), and DeleteCacheSubnetGroup exists
(moto answers 500), refusing while a replication group still uses the group.
"""
import json
import re

from moto.core.responses import ActionResult, EmptyResult
from moto.eks import models as eks_models
from moto.eks import urls as eks_urls
from moto.eks.exceptions import InvalidParameterException, ResourceInUseException, ResourceNotFoundException
from moto.eks.responses import EKSResponse

# Default add-on versions per Kubernetes version (a plausible catalogue; values are opaque), except
# the 1.35 column of coredns and kube-proxy: the latest version EKS publishes for 1.35 (EKS user
# guide, "Manage CoreDNS for DNS in Amazon EKS clusters" and "Manage kube-proxy in Amazon EKS
# clusters", CoreDNS / kube-proxy versions tables).
CATALOGUE = {
    "vpc-cni": {"1.32": "v1.19.2-eksbuild.1", "1.33": "v1.19.5-eksbuild.3", "1.34": "v1.20.1-eksbuild.1", "1.35": "v1.20.4-eksbuild.1"},
    "coredns": {"1.32": "v1.11.4-eksbuild.2", "1.33": "v1.12.1-eksbuild.2", "1.34": "v1.12.3-eksbuild.1", "1.35": "v1.14.2-eksbuild.4"},
    "kube-proxy": {"1.32": "v1.32.0-eksbuild.2", "1.33": "v1.33.0-eksbuild.2", "1.34": "v1.34.0-eksbuild.1", "1.35": "v1.35.3-eksbuild.2"},
    "eks-pod-identity-agent": {"1.32": "v1.3.4-eksbuild.1", "1.33": "v1.3.7-eksbuild.2", "1.34": "v1.3.8-eksbuild.1", "1.35": "v1.3.9-eksbuild.1"},
    "aws-ebs-csi-driver": {"1.32": "v1.40.0-eksbuild.1", "1.33": "v1.44.0-eksbuild.1", "1.34": "v1.48.0-eksbuild.1", "1.35": "v1.52.0-eksbuild.1"},
    # A community add-on since 2025-03-31 (EKS user guide, "Community add-ons").
    "metrics-server": {"1.32": "v0.7.2-eksbuild.3", "1.33": "v0.7.2-eksbuild.3", "1.34": "v0.8.0-eksbuild.1", "1.35": "v0.8.0-eksbuild.2"},
}


def _not_found(message, addon=None):
    return ResourceNotFoundException(
        clusterName=None, nodegroupName=None, fargateProfileName=None, addonName=addon, message=message
    )


def _state(resp, cluster_name):
    backend = resp.eks_backend
    if cluster_name not in backend.clusters:
        raise _not_found(f"No cluster found for name: {cluster_name}.")
    ext = backend.__dict__.setdefault("_dify_ext", {})
    return ext.setdefault(cluster_name, {"addons": {}, "access": {}})


def _addon_view(resp, cluster_name, addon):
    return {
        "addonName": addon["name"],
        "clusterName": cluster_name,
        "status": addon.get("status", "ACTIVE"),
        "addonVersion": addon["version"],
        "addonArn": f"arn:aws:eks:{resp.region}:{resp.current_account}:addon/{cluster_name}/{addon['name']}/x",
        "tags": addon["tags"],
        "health": {"issues": []},
        "podIdentityAssociations": [a["arn"] for a in addon.get("pod_identity", [])],
    }


def _pod_identity(resp, cluster_name):
    """CreateAddon / UpdateAddon `podIdentityAssociations`: EKS makes one association per entry
    and lists their ARNs on the add-on; given on update they replace the earlier ones (EKS user
    guide, "Use Pod Identities to assign an IAM role to an Amazon EKS add-on")."""
    given = resp._get_param("podIdentityAssociations")
    if given is None:
        return None
    return [
        {
            "serviceAccount": a["serviceAccount"],
            "roleArn": a["roleArn"],
            "arn": f"arn:aws:eks:{resp.region}:{resp.current_account}:podidentityassociation/{cluster_name}/a-{i}{a['serviceAccount']}",
        }
        for i, a in enumerate(given)
    ]


def create_addon(self):
    name = self._get_param("addonName")
    cluster = self._get_param("name")
    state = _state(self, cluster)
    if name in state["addons"]:
        raise ResourceInUseException(
            clusterName=cluster, nodegroupName=None, addonName=name, message=f"Addon already exists: {name}"
        )
    if name not in CATALOGUE:
        raise InvalidParameterException(message=f"Addon {name} specified is not supported")
    version = self._get_param("addonVersion") or CATALOGUE[name].get(self.eks_backend.clusters[cluster].version)
    state["addons"][name] = {
        "name": name,
        "version": version,
        "tags": self._get_param("tags") or {},
        "pod_identity": _pod_identity(self, cluster) or [],
    }
    return ActionResult({"addon": _addon_view(self, cluster, state["addons"][name])})


def describe_addon(self):
    cluster = self._get_param("name")
    name = self._get_param("addonName")
    addon = _state(self, cluster)["addons"].get(name)
    if addon is None:
        raise _not_found(f"No addon: {name} found in cluster: {cluster}", addon=name)
    return ActionResult({"addon": _addon_view(self, cluster, addon)})


def list_addons(self):
    return ActionResult({"addons": sorted(_state(self, self._get_param("name"))["addons"])})


def update_addon(self):
    cluster = self._get_param("name")
    name = self._get_param("addonName")
    addon = _state(self, cluster)["addons"].get(name)
    if addon is None:
        raise _not_found(f"No addon: {name} found in cluster: {cluster}", addon=name)
    addon["version"] = self._get_param("addonVersion") or addon["version"]
    associations = _pod_identity(self, cluster)
    if associations is not None:
        addon["pod_identity"] = associations
    return ActionResult({"update": {"id": "update-1", "status": "InProgress", "type": "AddonUpdate"}})


def delete_addon(self):
    cluster = self._get_param("name")
    name = self._get_param("addonName")
    addon = _state(self, cluster)["addons"].pop(name, None)
    if addon is None:
        raise _not_found(f"No addon: {name} found in cluster: {cluster}", addon=name)
    view = _addon_view(self, cluster, addon)
    view["status"] = "DELETING"
    return ActionResult({"addon": view})


def describe_addon_versions(self):
    wanted = self._get_param("addonName")
    k8s = self._get_param("kubernetesVersion")
    addons = []
    for name, versions in CATALOGUE.items():
        if wanted and name != wanted:
            continue
        infos = []
        for cluster_version, version in versions.items():
            if k8s and cluster_version != k8s:
                continue
            infos.append(
                {
                    "addonVersion": version,
                    "architecture": ["amd64", "arm64"],
                    "compatibilities": [
                        {"clusterVersion": cluster_version, "platformVersions": ["*"], "defaultVersion": True}
                    ],
                }
            )
        addons.append({"addonName": name, "type": "networking", "addonVersions": infos})
    return ActionResult({"addons": addons})


def _entry_view(self, cluster, entry):
    return {
        "clusterName": cluster,
        "principalArn": entry["principal"],
        "accessEntryArn": f"arn:aws:eks:{self.region}:{self.current_account}:access-entry/{cluster}/x",
        "type": "STANDARD",
        "tags": entry["tags"],
    }


def create_access_entry(self):
    cluster = self._get_param("name")
    principal = self._get_param("principalArn")
    # Access entries need the cluster's authentication mode to include the EKS API: with
    # CONFIG_MAP alone CreateAccessEntry fails with InvalidRequestException (EKS user guide,
    # "Change authentication mode to use access entries"; EKS API reference, CreateAccessEntry).
    found = self.eks_backend.clusters.get(cluster)
    mode = (getattr(found, "access_config", None) or {}).get("authenticationMode", "CONFIG_MAP")
    if STRICT and found is not None and mode == "CONFIG_MAP":
        from moto.eks.exceptions import InvalidRequestException

        raise InvalidRequestException(
            clusterName=cluster, nodegroupName=None, addonName=None,
            message="The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.",
        )
    state = _state(self, cluster)
    if principal in state["access"]:
        raise ResourceInUseException(
            clusterName=cluster, nodegroupName=None, addonName=None,
            message=f"The specified access entry resource is already in use on this cluster.",
        )
    state["access"][principal] = {"principal": principal, "tags": self._get_param("tags") or {}, "policies": []}
    return ActionResult({"accessEntry": _entry_view(self, cluster, state["access"][principal])})


def _entry(self):
    cluster = self._get_param("name")
    principal = self._get_param("principalArn")
    if principal.endswith("/access-policies"):
        principal = principal[: -len("/access-policies")]
    entry = _state(self, cluster)["access"].get(principal)
    if entry is None:
        raise _not_found(f"The specified principalArn could not be found: {principal}")
    return cluster, entry


def describe_access_entry(self):
    cluster, entry = _entry(self)
    return ActionResult({"accessEntry": _entry_view(self, cluster, entry)})


def list_access_entries(self):
    return ActionResult({"accessEntries": sorted(_state(self, self._get_param("name"))["access"])})


def delete_access_entry(self):
    cluster, entry = _entry(self)
    _state(self, cluster)["access"].pop(entry["principal"])
    return EmptyResult()


def associate_access_policy(self):
    cluster, entry = _entry(self)
    policy = self._get_param("policyArn")
    if policy not in entry["policies"]:
        entry["policies"].append(policy)
    return ActionResult(
        {
            "clusterName": cluster,
            "principalArn": entry["principal"],
            "associatedAccessPolicy": {"policyArn": policy, "accessScope": self._get_param("accessScope")},
        }
    )


def list_associated_access_policies(self):
    cluster, entry = _entry(self)
    return ActionResult(
        {
            "clusterName": cluster,
            "principalArn": entry["principal"],
            "associatedAccessPolicies": [
                {"policyArn": p, "accessScope": {"type": "cluster"}} for p in entry["policies"]
            ],
        }
    )


_orig_create_cluster = eks_models.EKSBackend.create_cluster
_orig_delete_cluster = eks_models.EKSBackend.delete_cluster


def _ec2(backend):
    from moto.ec2.models import ec2_backends

    return ec2_backends[backend.account_id][backend.region_name]


_orig_response_create_cluster = EKSResponse.create_cluster


def response_create_cluster(self):
    result = _orig_response_create_cluster(self)
    cluster = self.eks_backend.clusters.get(self._get_param("name"))
    access = self._get_param("accessConfig") or {}
    if cluster is not None:
        cluster.access_config = {
            "authenticationMode": access.get("authenticationMode", "CONFIG_MAP"),
            "bootstrapClusterCreatorAdminPermissions": access.get("bootstrapClusterCreatorAdminPermissions", True),
        }
    return result


def create_cluster(self, *args, **kwargs):
    cluster = _orig_create_cluster(self, *args, **kwargs)
    cluster.access_config = {
        "authenticationMode": "CONFIG_MAP",
        "bootstrapClusterCreatorAdminPermissions": True,
    }
    vpc_config = cluster.resources_vpc_config or {}
    subnets = vpc_config.get("subnetIds") or []
    if subnets:
        try:
            ec2 = _ec2(self)
            vpc_id = ec2.get_subnet(subnets[0]).vpc_id
            sg = ec2.create_security_group(
                f"eks-cluster-sg-{cluster.name}-{cluster.arn[-8:]}",
                "EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, as well as any managed workloads.",
                vpc_id=vpc_id,
                tags={"aws:eks:cluster-name": cluster.name, f"kubernetes.io/cluster/{cluster.name}": "owned"},
            )
            vpc_config["clusterSecurityGroupId"] = sg.id
            vpc_config["vpcId"] = vpc_id
            cluster.resources_vpc_config = vpc_config
        except Exception:  # noqa: BLE001 - never fail a create over the extension
            pass
    return cluster


def delete_cluster(self, name):
    cluster = _orig_delete_cluster(self, name)
    self.__dict__.get("_dify_ext", {}).pop(name, None)
    sg = (cluster.resources_vpc_config or {}).get("clusterSecurityGroupId")
    if sg:
        try:
            _ec2(self).delete_security_group(group_id=sg)
        except Exception:  # noqa: BLE001
            pass
    return cluster


_orig_update_cluster_config = eks_models.EKSBackend.update_cluster_config


def update_cluster_config(self, name, resources_vpc_config=None, **kwargs):
    # Keep the EKS-managed fields (AWS merges; moto replaces the whole block).
    cluster = self.clusters.get(name)
    if cluster is not None and resources_vpc_config:
        old = cluster.resources_vpc_config or {}
        for key in ("clusterSecurityGroupId", "vpcId"):
            if key in old:
                resources_vpc_config.setdefault(key, old[key])
    return _orig_update_cluster_config(self, name, resources_vpc_config=resources_vpc_config, **kwargs)


# ---------------------------------------------------------------- RDS


def _patch_rds():
    from moto.rds import models as rds_models
    from moto.rds.responses import RDSResponse

    prop = rds_models.DBCluster.enable_http_endpoint

    def set_http(self, val):
        self._enable_http_endpoint = bool(val)

    rds_models.DBCluster.enable_http_endpoint = prop.setter(set_http)

    def enable_http_endpoint(self):
        arn = self._get_param("ResourceArn")
        for cluster in self.backend.clusters.values():
            if cluster.db_cluster_arn == arn:
                cluster._enable_http_endpoint = True
                return ActionResult({"ResourceArn": arn, "HttpEndpointEnabled": True})
        from moto.rds.exceptions import DBClusterNotFoundError

        raise DBClusterNotFoundError(arn)

    RDSResponse.enable_http_endpoint = enable_http_endpoint


def _patch_rdsdata():
    """The Data API in front of a PostgreSQL catalogue: databases, login roles, role membership and
    database owners, for the statements dify-stack runs as the master user. Like PostgreSQL,
    CREATE of an existing database or role fails ("already exists"), and ALTER DATABASE ... OWNER
    TO a role needs the caller to be a member of that role (PostgreSQL docs, ALTER DATABASE: "you
    must be able to SET ROLE to the new owning role")."""
    from moto.core.exceptions import JsonRESTError
    from moto.rdsdata import models as data_models

    create = re.compile(r'^\s*CREATE\s+DATABASE\s+"?([A-Za-z0-9_]+)"?\s*;?\s*$', re.I)
    listing = re.compile(r"^\s*SELECT\s+datname\s+FROM\s+pg_database\s*;?\s*$", re.I)
    owned_by = re.compile(
        r"^\s*SELECT\s+datname\s+FROM\s+pg_database\s+WHERE\s+pg_get_userbyid\(datdba\)\s*=\s*'([a-z0-9_]+)'", re.I
    )
    role_exists = re.compile(r"^\s*SELECT\s+rolname\s+FROM\s+pg_roles\s+WHERE\s+rolname\s*=\s*'([a-z0-9_]+)'", re.I)
    create_role = re.compile(r'^\s*CREATE\s+ROLE\s+"?([a-z0-9_]+)"?\s+WITH\s+LOGIN\s+PASSWORD\s+\'([^\']*)\'', re.I)
    alter_role = re.compile(r'^\s*ALTER\s+ROLE\s+"?([a-z0-9_]+)"?\s+WITH\s+LOGIN\s+PASSWORD\s+\'([^\']*)\'', re.I)
    grant = re.compile(r'^\s*GRANT\s+"?([a-z0-9_]+)"?\s+TO\s+CURRENT_USER', re.I)
    owner = re.compile(r'^\s*ALTER\s+DATABASE\s+"?([a-z0-9_]+)"?\s+OWNER\s+TO\s+"?([a-z0-9_]+)"?', re.I)

    def execute_statement(self, resource_arn, sql):
        state = self.__dict__.setdefault("_dify_pg", {}).setdefault(
            resource_arn,
            {"dbs": {"postgres": "master", "template0": "master", "template1": "master"}, "roles": {}, "member": set()},
        )
        dbs, roles = state["dbs"], state["roles"]
        rows = lambda values: data_models.QueryResults(records=[[{"stringValue": v}] for v in values])
        if m := create.match(sql):
            if m.group(1) in dbs:
                raise JsonRESTError("BadRequestException", f'database "{m.group(1)}" already exists')
            dbs[m.group(1)] = "master"
            return rows([])
        if listing.match(sql):
            return rows(list(dbs))
        if m := owned_by.match(sql):
            return rows([d for d, o in dbs.items() if o == m.group(1)])
        if m := role_exists.match(sql):
            return rows([m.group(1)] if m.group(1) in roles else [])
        if m := create_role.match(sql):
            if m.group(1) in roles:
                raise JsonRESTError("BadRequestException", f'role "{m.group(1)}" already exists')
            roles[m.group(1)] = m.group(2)
            return rows([])
        if m := alter_role.match(sql):
            if m.group(1) not in roles:
                raise JsonRESTError("BadRequestException", f'role "{m.group(1)}" does not exist')
            roles[m.group(1)] = m.group(2)
            return rows([])
        if m := grant.match(sql):
            if m.group(1) not in roles:
                raise JsonRESTError("BadRequestException", f'role "{m.group(1)}" does not exist')
            state["member"].add(m.group(1))
            return rows([])
        if m := owner.match(sql):
            db, role = m.group(1), m.group(2)
            if db not in dbs:
                raise JsonRESTError("BadRequestException", f'database "{db}" does not exist')
            if role not in roles:
                raise JsonRESTError("BadRequestException", f'role "{role}" does not exist')
            if role not in state["member"]:
                raise JsonRESTError("BadRequestException", f'must be able to SET ROLE "{role}"')
            dbs[db] = role
            return rows([])
        return rows([])

    data_models.RDSDataServiceBackend.execute_statement = execute_statement


# ---------------------------------------------------------------- ElastiCache


def _patch_elasticache():
    from moto.elasticache import models as ec_models
    from moto.elasticache.responses import ElastiCacheResponse

    orig_delete = ec_models.ElastiCacheBackend.delete_replication_group

    def delete_replication_group(self, replication_group_id, retain_primary_cluster):
        group = orig_delete(self, replication_group_id, retain_primary_cluster)
        self.replication_groups.pop(replication_group_id, None)
        for cluster_id in list(getattr(group, "member_clusters", []) or []):
            self.cache_clusters.pop(cluster_id, None)
        for cluster_id, cluster in list(self.cache_clusters.items()):
            if getattr(cluster, "replication_group_id", None) == replication_group_id:
                self.cache_clusters.pop(cluster_id, None)
        return group

    def delete_cache_subnet_group(self):
        name = self._get_param("CacheSubnetGroupName")
        backend = self.elasticache_backend
        if name not in backend.cache_subnet_groups:
            from moto.elasticache.exceptions import CacheSubnetGroupNotFound

            raise CacheSubnetGroupNotFound(name)
        for group in backend.replication_groups.values():
            if getattr(group, "cache_subnet_group_name", None) == name:
                from moto.elasticache.exceptions import ElastiCacheException

                class CacheSubnetGroupInUse(ElastiCacheException):
                    code = "CacheSubnetGroupInUse"

                # moto finds the error model through the exception's module.
                CacheSubnetGroupInUse.__module__ = "moto.elasticache.exceptions"

                raise CacheSubnetGroupInUse(f"Cache subnet group {name} is in use")
        backend.cache_subnet_groups.pop(name)
        return ActionResult({})

    ec_models.ElastiCacheBackend.delete_replication_group = delete_replication_group
    ElastiCacheResponse.delete_cache_subnet_group = delete_cache_subnet_group


# ---------------------------------------------------------------- S3


def _patch_s3():
    from moto.s3.responses import S3Response

    def get_bucket_versioning(self):
        # moto 5.2.5 names the root element GetBucketVersioningResponse; S3 (and the Rust
        # SDK's strict parser) use VersioningConfiguration.
        status = self.backend.get_bucket_versioning(self.bucket_name)
        inner = f"<Status>{status}</Status>" if status else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</VersioningConfiguration>'
        )
        return 200, {"Content-Type": "application/xml"}, body

    S3Response.get_bucket_versioning = get_bucket_versioning


# ---------------------------------------------------------------- ECR


def _patch_ecr():
    from moto.ecr import models as ecr_models

    def update_scanning(self, image_scanning_configuration):
        # SDKs leave out `scanOnPush: false` (the default): AWS reads an empty configuration as
        # "off"; moto ignored it and kept scanning on.
        if image_scanning_configuration is not None:
            self.image_scanning_configuration = {
                "scanOnPush": bool(image_scanning_configuration.get("scanOnPush", False))
            }

    ecr_models.Repository._update_image_scanning_configuration = update_scanning


# ---------------------------------------------------------------- checkip
# https://checkip.amazonaws.com answers the caller's public address as plain text ("x.x.x.x\n").
# Served at /moto-api/dify-stack/checkip with the address this server sees (loopback here).
def _checkip(request, full_url, headers):
    addr = getattr(request, "remote_addr", None) or "127.0.0.1"
    return 200, {"Content-Type": "text/plain"}, addr + "\n"


def _patch_checkip():
    from moto.moto_api._internal import urls as api_urls

    api_urls.url_paths["{0}/moto-api/dify-stack/checkip$"] = _checkip
    api_urls.url_paths["{0}/moto-api/dify-stack/state$"] = _state_dump


# ---------------------------------------------------------------- whole state (leak checks)
# Served at /moto-api/dify-stack/state?account=A&region=R: every resource of the account that
# moto or this extension holds, tagged or not, as sorted "service.collection key" lines (text), for
# tests that compare the whole account before and after (a leak no tag filter finds: a network
# interface, a KMS alias, a policy, a record). Resources in a terminal deleted state that AWS
# itself keeps listing for a while (a NAT gateway "deleted", a KMS key pending deletion, a secret
# scheduled for deletion) count as gone; what the account had before is compared away.
_STATE_SERVICES = (
    "ec2", "eks", "iam", "kms", "logs", "rds", "elasticache", "opensearch", "s3", "ecr",
    "secretsmanager", "acm", "route53", "elbv2", "elb",
)
_GONE = {"deleted", "pendingdeletion", "pending_deletion", "deleting-complete"}


# moto's bookkeeping, not resources: tags it keeps for deleted ids, insertion orders, event logs.
_BOOKKEEPING = {"tags", "launch_template_insert_order", "events", "event_subscriptions"}


def _describe(item):
    """`(name)` of a resource, for a reader of a leak report."""
    for attr in ("name", "role_name", "key_id", "description"):
        value = getattr(item, attr, None)
        if isinstance(value, str) and value:
            return f" ({value})"
    return ""


def _gone(item):
    for attr in ("state", "status", "key_state", "_state"):
        value = getattr(item, attr, None)
        value = getattr(value, "name", value)
        if isinstance(value, str) and value.replace(" ", "").lower() in _GONE:
            return True
    if getattr(item, "deleted_date", None):  # Secrets Manager: scheduled for deletion
        return True
    if getattr(item, "deletion_date", None) or getattr(item, "pending_deletion_window_in_days", None):
        return True  # KMS: scheduled for deletion
    if isinstance(item, (dict, list)) and not item:
        return True  # an emptied per-VPC container (moto keeps the key)
    if getattr(item, "key_manager", None) == "AWS":
        return True  # an AWS managed key (aws/secretsmanager, ...): the account's, never deletable
    if isinstance(item, dict) and str(item.get("status", "")).lower() in _GONE:
        return True
    return False


def _state_dump(request, full_url, headers):
    from urllib.parse import parse_qs, urlparse

    from moto.backends import get_backend

    query = parse_qs(urlparse(full_url).query)
    account = query.get("account", ["123456789012"])[0]
    region = query.get("region", ["us-west-2"])[0]
    lines = set()
    for service in _STATE_SERVICES:
        try:
            per_account = get_backend(service)[account]
        except Exception:  # a service this moto build lacks
            continue
        for where in (region, "global", "aws"):
            try:
                backend = per_account[where]
            except Exception:
                continue
            vpcs = getattr(backend, "vpcs", None) if service == "ec2" else None
            for attr, value in vars(backend).items():
                if attr.startswith("_") and not attr.startswith("_dify"):
                    continue
                if attr in _BOOKKEEPING:
                    continue
                if isinstance(value, dict):
                    for key, item in value.items():
                        if isinstance(item, dict) and attr.startswith("_dify"):
                            # the extension's per-cluster state: one level further
                            for sub, entries in item.items():
                                for name in (entries if isinstance(entries, dict) else {}):
                                    lines.add(f"{service}.{attr}.{key}.{sub} {name}")
                            continue
                        # AWS deletes a VPC's default network ACL with the VPC; moto keeps it.
                        vpc_id = getattr(item, "vpc_id", None)
                        if attr == "network_acls" and vpcs is not None and vpc_id and vpc_id not in vpcs:
                            continue
                        # moto's stand-in for an AWS managed key (alias/aws/<service>, made on a
                        # service's first use): on AWS the account's, never deletable.
                        aliases = getattr(item, "aliases", None) or {} if service == "kms" else {}
                        if any(str(a).startswith("alias/aws/") for a in aliases):
                            continue
                        if not _gone(item):
                            lines.add(f"{service}.{attr} {key}{_describe(item)}")
                elif isinstance(value, list):
                    live = [i for i in value if not _gone(i)]
                    if live:
                        lines.add(f"{service}.{attr} [{len(live)} items]")
    return 200, {"Content-Type": "text/plain"}, "".join(line + "\n" for line in sorted(lines))


def fixture_params(request, full_url):
    """The parameters of a call to one of the extension's `/moto-api/dify-stack/...` test
    fixtures: the query string, plus on POST the body as JSON or form fields. werkzeug leaves
    `data` empty and parses the body into `form` when the client says it is form-encoded (as
    urllib does by default), so a JSON text may arrive as a form key without a value."""
    import json as _json
    from urllib.parse import parse_qs, urlparse

    params = {k: v[0] for k, v in parse_qs(urlparse(full_url).query).items()}
    if getattr(request, "method", "GET") != "POST":
        return params
    raw = getattr(request, "data", b"") or b""
    if not raw and hasattr(request, "get_data"):
        raw = request.get_data(cache=True) or b""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    form = getattr(request, "form", None)
    if form:
        for key, value in form.items():
            if not value and key.lstrip().startswith("{"):
                text = text or key
            else:
                params[key] = value
    if text.strip():
        try:
            params.update(_json.loads(text))
        except ValueError:
            params.update({k: v[0] for k, v in parse_qs(text).items()})
    return params


def install():
    _patch_checkip()
    _patch_ecr()
    _patch_s3()
    _patch_rds()
    _patch_rdsdata()
    _patch_elasticache()
    for fn in (
        create_addon, describe_addon, list_addons, update_addon, delete_addon, describe_addon_versions,
        create_access_entry, describe_access_entry, list_access_entries, delete_access_entry,
        associate_access_policy, list_associated_access_policies,
    ):
        setattr(EKSResponse, fn.__name__, fn)
    EKSResponse.create_cluster = response_create_cluster
    eks_models.EKSBackend.create_cluster = create_cluster
    eks_models.EKSBackend.delete_cluster = delete_cluster
    eks_models.EKSBackend.update_cluster_config = update_cluster_config
    dispatch = eks_urls.response.dispatch
    eks_urls.url_paths.update(
        {
            "{0}/clusters/(?P<name>[^/]+)/addons$": dispatch,
            "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)$": dispatch,
            "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)/update$": dispatch,
            "{0}/addons/supported-versions$": dispatch,
            "{0}/clusters/(?P<name>[^/]+)/access-entries$": dispatch,
            # Principal ARNs hold a "/" (role/name) that arrives decoded from %2F.
            # Principal ARNs hold a "/" (role/name) that arrives decoded from %2F, so one route
            # serves both paths; _entry() strips the /access-policies suffix.
            "{0}/clusters/(?P<name>[^/]+)/access-entries/(?P<principalArn>.+)$": dispatch,
        }
    )
    install_strict()


# ================================================================ STRICT MODE
# Documented AWS behaviour that moto does not model, so that code which would fail on a real
# account fails here first. On unless DIFY_STACK_EMULATOR_STRICT=0. Each rule names its source.
# Pending states last DIFY_STACK_EMULATOR_PENDING_SECONDS (default 0.3 s) of wall time.

import os
import time

STRICT = os.environ.get("DIFY_STACK_EMULATOR_STRICT", "1") != "0"
PENDING = float(os.environ.get("DIFY_STACK_EMULATOR_PENDING_SECONDS", "0.3"))


def _ec_error(code, message):
    from moto.elasticache.exceptions import ElastiCacheException

    cls = type(code, (ElastiCacheException,), {"code": code})
    # moto finds the error model through the exception's module.
    cls.__module__ = "moto.elasticache.exceptions"
    return cls(message)


# ---------------------------------------------------------------- ElastiCache
# * A replication group passes through `creating` after CreateReplicationGroup, `modifying` after
#   ModifyReplicationGroup / Increase- / DecreaseReplicaCount, and `deleting` before it is gone
#   (ElastiCache user guide, "Managing clusters": status values).
# * ListTagsForResource / AddTagsToResource on a group (or a member cluster) that is not
#   `available` fail with InvalidReplicationGroupState "Cluster not in available state to perform
#   tagging operations" (terraform-provider-aws #33859, #30444, #41416).
# * Modify and Delete of a group that is not `available` fail with InvalidReplicationGroupState
#   (ElastiCache API reference, DeleteReplicationGroup / ModifyReplicationGroup errors).
# * NumCacheClusters=N makes N member clusters (moto makes 1 unless ReplicasPerNodeGroup is set).

_busy = {}  # (account, region, group id) -> (status, until, then: "available" | "gone")


def _rg_settle(backend):
    now = time.monotonic()
    for key, (status, until, then) in list(_busy.items()):
        if key[:2] != (backend.account_id, backend.region_name):
            continue
        group = backend.replication_groups.get(key[2])
        if group is None:
            _busy.pop(key, None)
        elif now < until:
            group.status = status
        else:
            _busy.pop(key, None)
            if then == "gone":
                backend.replication_groups.pop(key[2], None)
                for cluster_id, cluster in list(backend.cache_clusters.items()):
                    if cluster_id in (getattr(group, "member_clusters", None) or []) or getattr(
                        cluster, "replication_group_id", None
                    ) == key[2]:
                        backend.cache_clusters.pop(cluster_id, None)
            else:
                group.status = "available"


def _rg_busy(backend, group_id, status, then):
    _busy[(backend.account_id, backend.region_name, group_id)] = (status, time.monotonic() + PENDING, then)
    group = backend.replication_groups.get(group_id)
    if group is not None:
        group.status = status


def _rg_require_available(backend, group_id, what):
    _rg_settle(backend)
    group = backend.replication_groups.get(group_id)
    if group is not None and group.status != "available":
        raise _ec_error(
            "InvalidReplicationGroupState",
            f"Replication group {group_id} is not in available state ({group.status}); cannot {what}.",
        )


def _group_of_arn(backend, arn):
    _rg_settle(backend)
    name = arn.rsplit(":", 1)[-1]
    if ":replicationgroup:" in arn:
        return backend.replication_groups.get(name)
    if ":cluster:" in arn:
        for group in backend.replication_groups.values():
            if name in (getattr(group, "member_clusters", None) or []):
                return group
    return None


def _patch_elasticache_strict():
    from moto.elasticache import models as ec_models

    B = ec_models.ElastiCacheBackend
    orig_create = B.create_replication_group
    orig_delete = B.delete_replication_group
    orig_modify = B.modify_replication_group
    orig_describe = B.describe_replication_groups
    orig_list_tags = B.list_tags_for_resource
    orig_add_tags = B.add_tags_to_resource
    orig_members = ec_models.ReplicationGroup._set_node_members_clusters_disabled

    def members(self, member_clusters, replication_group_id, replication_group_domain, node_group,
                preferred_cache_cluster_azs, num_cache_clusters, replicas_per_node_group):
        if not replicas_per_node_group and num_cache_clusters and num_cache_clusters > 1:
            replicas_per_node_group = num_cache_clusters - 1
        return orig_members(self, member_clusters, replication_group_id, replication_group_domain, node_group,
                            preferred_cache_cluster_azs, num_cache_clusters, replicas_per_node_group)

    def create(self, replication_group_id, *args, **kwargs):
        group = orig_create(self, replication_group_id, *args, **kwargs)
        _rg_busy(self, replication_group_id, "creating", "available")
        return group

    def delete(self, replication_group_id, retain_primary_cluster):
        _rg_require_available(self, replication_group_id, "delete it")
        group = orig_delete(self, replication_group_id, retain_primary_cluster)
        # moto removed nothing yet; the group stays visible as `deleting`, then goes.
        if replication_group_id not in self.replication_groups and group is not None:
            self.replication_groups[replication_group_id] = group
        _rg_busy(self, replication_group_id, "deleting", "gone")
        return group

    def modify(self, replication_group_id, *args, **kwargs):
        _rg_require_available(self, replication_group_id, "modify it")
        group = orig_modify(self, replication_group_id, *args, **kwargs)
        _rg_busy(self, replication_group_id, "modifying", "available")
        return group

    def describe(self, *args, **kwargs):
        _rg_settle(self)
        return orig_describe(self, *args, **kwargs)

    def list_tags(self, arn):
        group = _group_of_arn(self, arn)
        if group is not None and group.status != "available":
            raise _ec_error("InvalidReplicationGroupState", "Cluster not in available state to perform tagging operations.")
        return orig_list_tags(self, arn)

    def add_tags(self, arn, tags):
        group = _group_of_arn(self, arn)
        if group is not None and group.status != "available":
            raise _ec_error("InvalidReplicationGroupState", "Cluster not in available state to perform tagging operations.")
        return orig_add_tags(self, arn, tags)

    ec_models.ReplicationGroup._set_node_members_clusters_disabled = members
    B.create_replication_group = create
    B.delete_replication_group = delete
    B.modify_replication_group = modify
    B.describe_replication_groups = describe
    B.list_tags_for_resource = list_tags
    B.add_tags_to_resource = add_tags


# ---------------------------------------------------------------- EC2
# DeleteSecurityGroup of a group that another group's rule references, or that a network
# interface uses, fails with DependencyViolation "resource sg-... has a dependent object" (EC2
# API reference, DeleteSecurityGroup: "If you attempt to delete a security group that is
# associated with an instance or network interface, is referenced by another security group in
# the same VPC, or has a VPC association, the operation fails with DependencyViolation"). moto
# deletes a group its interfaces still use.


def _patch_ec2_strict():
    from moto.ec2.exceptions import DependencyViolationError
    from moto.ec2.models.security_groups import SecurityGroupBackend

    orig = SecurityGroupBackend._delete_security_group

    def delete(self, vpc_id, group_id):
        for eni in list(getattr(self, "enis", {}).values()):
            if any(getattr(g, "id", None) == group_id for g in getattr(eni, "_group_set", [])):
                raise DependencyViolationError(f"resource {group_id} has a dependent object")
        for groups in self.groups.values():
            for other in groups.values():
                if other.id == group_id:
                    continue
                for rule in list(other.ingress_rules) + list(other.egress_rules):
                    sources = list(getattr(rule, "source_groups", None) or [])
                    if getattr(rule, "source_group", None):
                        sources.append(rule.source_group)
                    for source in sources:
                        if source.get("GroupId") == group_id:
                            raise DependencyViolationError(f"resource {group_id} has a dependent object")
        return orig(self, vpc_id, group_id)

    SecurityGroupBackend._delete_security_group = delete


# ---------------------------------------------------------------- EKS
# clientRequestToken must be 33 to 126 characters: InvalidParameterException "The client
# request token parameter must be between 33 and 126 characters" (EKS API reference,
# CreateCluster / CreateNodegroup / CreateAddon; ansible community.aws #817, PR #844).


def _check_token(response):
    token = response._get_param("clientRequestToken")
    if token is not None and not (33 <= len(token) <= 126):
        raise InvalidParameterException(
            message="The client request token parameter must be between 33 and 126 characters"
        )


# Pending states: a cluster is CREATING after CreateCluster, UPDATING after UpdateClusterConfig
# / UpdateClusterVersion and DELETING before it is gone; node groups and add-ons likewise pass
# through CREATING, UPDATING and DELETING (EKS API reference: Cluster.status, Nodegroup.status,
# Addon.status). CreateNodegroup and CreateAddon on a cluster that is not ACTIVE fail with
# InvalidRequestException "Cluster '<name>' is not in ACTIVE status" (eksctl #2244).

_eks_busy = {}  # (account, region, kind, cluster, name) -> (status, until, then: "ACTIVE" | "gone")
# moto's server answers requests on several threads: two requests settling the same pending
# entry at once would both run its deferred delete (the second on a resource already gone).
# One lock serialises settling; an entry's action runs only for the thread that removed it.
import threading

_eks_lock = threading.RLock()


def _eks_key(backend, kind, cluster, name=""):
    return (backend.account_id, backend.region_name, kind, cluster, name)


def _eks_settle(backend):
    with _eks_lock:
        _eks_settle_locked(backend)


def _eks_settle_locked(backend):
    now = time.monotonic()
    for key, (status, until, then) in list(_eks_busy.items()):
        if key[:2] != (backend.account_id, backend.region_name):
            continue
        kind, cluster_name, name = key[2:]
        cluster = backend.clusters.get(cluster_name)
        if kind == "cluster":
            target = cluster
        elif kind == "nodegroup":
            target = cluster.nodegroups.get(name) if cluster else None
        else:
            ext = backend.__dict__.get("_dify_ext", {}).get(cluster_name) or {"addons": {}}
            target = ext["addons"].get(name) if cluster else None
        if target is None:
            _eks_busy.pop(key, None)
            continue
        if now < until:
            _set_status(target, status)
            continue
        if _eks_busy.pop(key, None) is None:
            continue  # settled by an earlier call
        if then == "ACTIVE":
            _set_status(target, "ACTIVE")
        elif kind == "cluster":
            eks_models.EKSBackend._dify_orig_delete_cluster(backend, cluster_name)
        elif kind == "nodegroup":
            eks_models.EKSBackend._dify_orig_delete_nodegroup(backend, cluster_name, name)
        else:
            _state_of(backend, cluster_name)["addons"].pop(name, None)


def _set_status(target, status):
    if isinstance(target, dict):
        target["status"] = status
    else:
        target.status = status


def _state_of(backend, cluster_name):
    ext = backend.__dict__.setdefault("_dify_ext", {})
    return ext.setdefault(cluster_name, {"addons": {}, "access": {}})


def _eks_busy_for(backend, kind, cluster, name, status, then):
    with _eks_lock:
        _eks_busy[_eks_key(backend, kind, cluster, name)] = (status, time.monotonic() + PENDING, then)
        _eks_settle_locked(backend)


def _require_active(backend, cluster_name):
    _eks_settle(backend)
    cluster = backend.clusters.get(cluster_name)
    if cluster is not None and cluster.status != "ACTIVE":
        from moto.eks.exceptions import InvalidRequestException

        raise InvalidRequestException(
            clusterName=cluster_name,
            nodegroupName=None,
            addonName=None,
            message=f"Cluster '{cluster_name}' is not in ACTIVE status",
        )


# IAM is eventually consistent: EKS cannot assume a role created moments ago, and CreateCluster
# fails with InvalidParameterException "Role with arn: ... could not be assumed because it does
# not exist or the trusted entity is not correct" (IAM user guide, "Changes that I make are not
# always immediately visible"; terraform-provider-aws retries this error on CreateCluster).
def _require_role_propagated(backend, role_arn):
    from moto.core.utils import utcnow
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    iam = iam_backends[backend.account_id][get_partition(backend.region_name)]
    role = next((r for r in iam.roles.values() if r.arn == role_arn), None)
    # A role of this account that does not exist is refused the same way (EKS API reference,
    # CreateCluster: roleArn must name a role EKS can assume).
    missing = role is None and f":{backend.account_id}:role/" in (role_arn or "")
    if missing or (role is not None and (utcnow() - role.create_date).total_seconds() < PENDING):
        raise InvalidParameterException(
            clusterName=None,
            nodegroupName=None,
            addonName=None,
            message=f"Role with arn: {role_arn}, could not be assumed because it does not exist or the trusted entity is not correct",
        )


def _patch_eks_strict():
    for name in ("create_cluster", "create_nodegroup", "create_addon"):
        orig = getattr(EKSResponse, name)

        def checked(self, _orig=orig):
            _check_token(self)
            return _orig(self)

        setattr(EKSResponse, name, checked)

    B = eks_models.EKSBackend
    _settle_first(B, ("describe_cluster", "list_clusters", "describe_nodegroup", "list_nodegroups"), _eks_settle)

    orig_create_cluster = B.create_cluster

    def create_cluster_pending(self, name, role_arn, *args, **kwargs):
        _require_role_propagated(self, role_arn)
        cluster = orig_create_cluster(self, name, role_arn, *args, **kwargs)
        _eks_busy_for(self, "cluster", name, "", "CREATING", "ACTIVE")
        return cluster

    B.create_cluster = create_cluster_pending

    for name in ("update_cluster_config", "update_cluster_version"):
        orig = getattr(B, name, None)
        if orig is None:
            continue

        def updating(self, name, *args, _orig=orig, **kwargs):
            result = _orig(self, name, *args, **kwargs)
            _eks_busy_for(self, "cluster", name, "", "UPDATING", "ACTIVE")
            return result

        setattr(B, name, updating)

    B._dify_orig_delete_cluster = B.delete_cluster

    def delete_cluster_pending(self, name):
        _eks_settle(self)
        cluster = self.clusters.get(name)
        if cluster is None or cluster.nodegroups:
            return B._dify_orig_delete_cluster(self, name)  # moto's not-found / in-use errors
        _eks_busy_for(self, "cluster", name, "", "DELETING", "gone")
        return cluster

    B.delete_cluster = delete_cluster_pending

    orig_create_nodegroup = B.create_nodegroup

    def create_nodegroup_pending(self, cluster_name, node_role, nodegroup_name, *args, **kwargs):
        _require_active(self, cluster_name)
        ng = orig_create_nodegroup(self, cluster_name, node_role, nodegroup_name, *args, **kwargs)
        _eks_busy_for(self, "nodegroup", cluster_name, nodegroup_name, "CREATING", "ACTIVE")
        return ng

    B.create_nodegroup = create_nodegroup_pending

    for name in ("update_nodegroup_config", "update_nodegroup_version"):
        orig = getattr(B, name, None)
        if orig is None:
            continue

        def ng_updating(self, cluster_name, nodegroup_name, *args, _orig=orig, **kwargs):
            result = _orig(self, cluster_name, nodegroup_name, *args, **kwargs)
            _eks_busy_for(self, "nodegroup", cluster_name, nodegroup_name, "UPDATING", "ACTIVE")
            return result

        setattr(B, name, ng_updating)

    def delete_nodegroup_pending(self, cluster_name, nodegroup_name):
        _eks_settle(self)
        cluster = self.clusters.get(cluster_name)
        ng = cluster.nodegroups.get(nodegroup_name) if cluster else None
        if ng is None:
            return B._dify_orig_delete_nodegroup(self, cluster_name, nodegroup_name)
        _eks_busy_for(self, "nodegroup", cluster_name, nodegroup_name, "DELETING", "gone")
        return ng

    B._dify_orig_delete_nodegroup = B.delete_nodegroup
    B.delete_nodegroup = delete_nodegroup_pending

    # Add-ons (modelled in this file): pending states and the ACTIVE-cluster rule.
    orig_create_addon = EKSResponse.create_addon

    def create_addon_pending(self):
        cluster = self._get_param("name")
        _require_active(self.eks_backend, cluster)
        result = orig_create_addon(self)
        _eks_busy_for(self.eks_backend, "addon", cluster, self._get_param("addonName"), "CREATING", "ACTIVE")
        return result

    EKSResponse.create_addon = create_addon_pending

    orig_update_addon = EKSResponse.update_addon

    def update_addon_pending(self):
        result = orig_update_addon(self)
        _eks_busy_for(self.eks_backend, "addon", self._get_param("name"), self._get_param("addonName"), "UPDATING", "ACTIVE")
        return result

    EKSResponse.update_addon = update_addon_pending

    def delete_addon_pending(self):
        cluster = self._get_param("name")
        name = self._get_param("addonName")
        _eks_settle(self.eks_backend)
        addon = _state(self, cluster)["addons"].get(name)
        if addon is None:
            raise _not_found(f"No addon: {name} found in cluster: {cluster}", addon=name)
        _eks_busy_for(self.eks_backend, "addon", cluster, name, "DELETING", "gone")
        return ActionResult({"addon": _addon_view(self, cluster, addon)})

    EKSResponse.delete_addon = delete_addon_pending

    _settle_first(EKSResponse, ("describe_addon", "list_addons"), lambda resp: _eks_settle(resp.eks_backend))


# ---------------------------------------------------------------- IAM + OpenSearch
# * CreateServiceLinkedRole for opensearchservice.amazonaws.com makes
#   AWSServiceRoleForAmazonOpenSearchService (OpenSearch developer guide, "Using service-linked
#   roles"); a second call fails with InvalidInput "Service role name ... has been taken in this
#   account, please try a different suffix" (terraform-aws-elasticsearch #59).
# * CreateDomain with VPC options on an account without that role fails: "Before you can
#   proceed, you must enable a service-linked role to give Amazon OpenSearch Service permissions
#   to access your VPC." (terraform-aws-opensearch #27, copilot-cli #3006).

OPENSEARCH_SLR = "AWSServiceRoleForAmazonOpenSearchService"


def _patch_opensearch_strict():
    from moto.core.exceptions import JsonRESTError
    from moto.iam import models as iam_models
    from moto.iam.exceptions import InvalidInput
    from moto.opensearch import models as os_models

    orig_slr = iam_models.IAMBackend.create_service_linked_role

    # moto derives the role name from the service name ("AWSServiceRoleForopensearchservice").
    iam_models.SERVICE_NAME_CONVERSION["opensearchservice"] = "AmazonOpenSearchService"

    def create_slr(self, service_name, description, suffix):
        if service_name == "opensearchservice.amazonaws.com" and not suffix:
            if any(r.name == OPENSEARCH_SLR for r in self.roles.values()):
                raise InvalidInput(
                    f"Service role name {OPENSEARCH_SLR} has been taken in this account, please try a different suffix."
                )
        return orig_slr(self, service_name, description, suffix)

    orig_create = os_models.OpenSearchServiceBackend.create_domain

    def create_domain(self, domain_name, engine_version, cluster_config, ebs_options, access_policies,
                      snapshot_options, vpc_options, *args, **kwargs):
        if vpc_options:
            from moto.utilities.utils import get_partition

            iam = iam_models.iam_backends[self.account_id][get_partition(self.region_name)]
            if not any(r.name == OPENSEARCH_SLR for r in iam.roles.values()):
                raise JsonRESTError(
                    "ValidationException",
                    "Before you can proceed, you must enable a service-linked role to give Amazon OpenSearch "
                    "Service permissions to access your VPC.",
                )
        return orig_create(self, domain_name, engine_version, cluster_config, ebs_options, access_policies,
                           snapshot_options, vpc_options, *args, **kwargs)

    iam_models.IAMBackend.create_service_linked_role = create_slr
    os_models.OpenSearchServiceBackend.create_domain = create_domain


def _settle_first(cls, names, settle):
    """Wraps each named method of `cls` so that `settle(self)` brings pending states up to date
    before it answers (reads see a resource leave its pending state once its time is up)."""
    for name in names:
        orig = getattr(cls, name)

        def settled(self, *args, _orig=orig, **kwargs):
            settle(self)
            return _orig(self, *args, **kwargs)

        setattr(cls, name, settled)


# ---------------------------------------------------------------- a generic timer
# Settles pending states by wall time: key -> (until, on_done). `on_done` runs once, on the first
# call that settles after `until`.

_timers = {}


def _after(key, on_done):
    _timers[key] = (time.monotonic() + PENDING, on_done)


def _pending(key):
    return key in _timers


def _settle_all():
    now = time.monotonic()
    for key, (until, on_done) in list(_timers.items()):
        if now >= until and _timers.pop(key, None) is not None:
            on_done()


# ---------------------------------------------------------------- EC2 NAT gateways
# CreateNatGateway answers `pending` and the gateway becomes `available` later; DeleteNatGateway
# moves it to `deleting`, then `deleted` (VPC user guide, "NAT gateway basics": states pending,
# failed, available, deleting, deleted). Routes to a pending gateway are accepted.


def _patch_nat_strict():
    from moto.ec2.models.nat_gateways import NatGatewayBackend

    orig_create = NatGatewayBackend.create_nat_gateway
    orig_describe = NatGatewayBackend.describe_nat_gateways
    orig_delete = NatGatewayBackend.delete_nat_gateway

    # A public NAT gateway in a VPC without an attached internet gateway is accepted, then ends
    # `failed` with FailureCode `Gateway.NotAttached` ("Network vpc-... has no Internet gateway
    # attached": VPC user guide, "Troubleshoot NAT gateways", NAT gateway creation fails).
    def attached_igw(backend, vpc_id):
        return any(getattr(g, "vpc", None) is not None and g.vpc.id == vpc_id for g in backend.internet_gateways.values())

    def create(self, *args, **kwargs):
        nat = orig_create(self, *args, **kwargs)
        nat.state = "pending"
        vpc_id = self.get_subnet(nat.subnet_id).vpc_id
        if (nat.connectivity_type or "public") == "public" and not attached_igw(self, vpc_id):

            def failed():
                nat.state = "failed"
                nat.failure_code = "Gateway.NotAttached"
                nat.failure_message = f"Network {vpc_id} has no Internet gateway attached"

            _after(("nat", nat.id), failed)
            return nat
        _after(("nat", nat.id), lambda: setattr(nat, "state", "available") if nat.state == "pending" else None)
        return nat

    def describe(self, *args, **kwargs):
        _settle_all()
        return orig_describe(self, *args, **kwargs)

    # A deleted NAT gateway's network interface goes with it ("When you delete a NAT gateway,
    # its network interface is deleted": VPC user guide, "Delete a NAT gateway"; the Elastic IP
    # is disassociated, not released); moto keeps the interface.
    def gone(nat):
        nat.state = "deleted"
        eni = getattr(nat, "_eni", None)
        if eni is not None and eni.id in self_enis(nat):
            nat.ec2_backend.enis.pop(eni.id, None)

    def self_enis(nat):
        return getattr(nat.ec2_backend, "enis", {})

    def delete(self, nat_gateway_id):
        nat = orig_delete(self, nat_gateway_id)
        nat.state = "deleting"
        _timers.pop(("nat", nat.id), None)
        _after(("nat", nat.id), lambda: gone(nat))
        return nat

    NatGatewayBackend.create_nat_gateway = create
    NatGatewayBackend.describe_nat_gateways = describe
    NatGatewayBackend.delete_nat_gateway = delete


# ---------------------------------------------------------------- RDS
# DB clusters and instances are `creating` after their create call, `modifying` after a modify,
# `deleting` before they are gone (RDS user guide, "Viewing Amazon Aurora DB cluster status" and
# "DB instance status"). A cluster with instances cannot be deleted (moto models this); since an
# instance stays a member while `deleting`, DeleteDBCluster is refused until it is gone.


def _patch_rds_strict():
    from moto.rds import models as rds_models
    from moto.rds.exceptions import DBInstanceNotFoundError, InvalidParameterCombination

    B = rds_models.RDSBackend

    def busy(obj, status, key):
        obj.status = status
        _after(key, lambda: setattr(obj, "status", "available") if obj.status == status else None)

    orig_create_cluster = B.create_db_cluster

    def create_cluster(self, kwargs):
        c = orig_create_cluster(self, kwargs)
        busy(c, "creating", ("rds-cluster", self.account_id, c.db_cluster_identifier))
        return c

    orig_modify_cluster = B.modify_db_cluster

    # ModifyDBCluster on a cluster that is not `available` (creating, modifying, backing-up)
    # fails with InvalidDBClusterStateFault (RDS API reference, ModifyDBCluster errors;
    # terraform-provider-aws waits for `available` before modifying for this reason).
    def modify_cluster(self, kwargs):
        from moto.rds.exceptions import InvalidDBClusterStateFault

        _settle_all()
        current = self.clusters.get(kwargs.get("db_cluster_identifier"))
        if current is not None and current.status != "available":
            raise InvalidDBClusterStateFault(
                f"DbCluster {current.db_cluster_identifier} is not in available state (it is {current.status})."
            )
        c = orig_modify_cluster(self, kwargs)
        busy(c, "modifying", ("rds-cluster", self.account_id, c.db_cluster_identifier))
        return c

    orig_create_instance = B.create_db_instance

    def create_instance(self, db_kwargs):
        d = orig_create_instance(self, db_kwargs)
        busy(d, "creating", ("rds-instance", self.account_id, d.db_instance_identifier))
        return d

    orig_delete_instance = B.delete_db_instance

    def delete_instance(self, db_instance_identifier, *args, **kwargs):
        _settle_all()
        d = self.databases.get(db_instance_identifier)
        if d is None:
            raise DBInstanceNotFoundError(db_instance_identifier)
        if d.deletion_protection:
            raise InvalidParameterCombination(
                "Cannot delete protected DB Instance, please disable deletion protection and try again."
            )
        key = ("rds-instance", self.account_id, db_instance_identifier)
        if d.status != "deleting":
            d.status = "deleting"
            _timers.pop(key, None)
            _after(key, lambda: orig_delete_instance(self, db_instance_identifier, *args, **kwargs))
        return d

    orig_delete_cluster = B.delete_db_cluster

    def delete_cluster(self, cluster_identifier, snapshot_name=None):
        _settle_all()
        c = self.clusters.get(cluster_identifier)
        key = ("rds-cluster", self.account_id, cluster_identifier)
        if c is None or c.deletion_protection or c.members or c.status == "deleting":
            if c is not None and c.status == "deleting":
                return c
            return orig_delete_cluster(self, cluster_identifier, snapshot_name)  # moto's errors
        c.status = "deleting"
        _timers.pop(key, None)
        _after(key, lambda: orig_delete_cluster(self, cluster_identifier, snapshot_name))
        return c

    _settle_first(B, ("describe_db_clusters", "describe_db_instances"), lambda _: _settle_all())

    B.create_db_cluster = create_cluster
    B.modify_db_cluster = modify_cluster
    B.create_db_instance = create_instance
    B.delete_db_instance = delete_instance
    B.delete_db_cluster = delete_cluster


# ---------------------------------------------------------------- OpenSearch domains
# A new or changed domain reports Processing=true, and a VPC domain has no endpoint until it is
# ready; DeleteDomain leaves it Deleted=true, Processing=true until it is gone (OpenSearch API
# reference, DomainStatus: Processing, Endpoints "available only after the domain is created").


def _patch_opensearch_pending():
    from moto.opensearch import models as os_models

    B = os_models.OpenSearchServiceBackend
    orig_create = B.create_domain
    orig_update = B.update_domain_config
    orig_delete = B.delete_domain

    def create(self, domain_name, *args, **kwargs):
        d = orig_create(self, domain_name, *args, **kwargs)
        d.processing = True
        saved = (d.endpoint, d.endpoints)
        d.endpoint, d.endpoints = None, None

        def ready():
            d.processing = False
            d.endpoint, d.endpoints = saved

        _after(("os", self.account_id, domain_name), ready)
        return d

    def update(self, domain_name, *args, **kwargs):
        d = orig_update(self, domain_name, *args, **kwargs)
        d.processing = True
        key = ("os", self.account_id, domain_name)
        if not _pending(key):
            _after(key, lambda: setattr(d, "processing", False))
        return d

    def delete(self, domain_name):
        _settle_all()
        d = self.domains.get(domain_name)
        if d is None or d.deleted:
            return orig_delete(self, domain_name) if d is None else d
        d.deleted = True
        d.processing = True
        key = ("os", self.account_id, domain_name)
        _timers.pop(key, None)
        _after(key, lambda: self.domains.pop(domain_name, None))
        return d

    _settle_first(B, ("describe_domain", "describe_domains", "list_domain_names"), lambda _: _settle_all())

    B.create_domain = create
    B.update_domain_config = update
    B.delete_domain = delete

# ---------------------------------------------------------------- ACM DNS validation
# A certificate requested with DNS validation stays PENDING_VALIDATION until ACM finds the CNAME
# record it asked for, and is ISSUED some time after that (ACM user guide, "DNS validation":
# "ACM ... automatically checks the CNAME record ... can take up to 30 minutes"); moto issues
# every certificate after 60 s whether or not the record exists. Here the record must be in a
# public hosted zone of the account (ACM resolves it through public DNS; a domain not delegated to
# the zone never validates, which the emulator does not model). Right after RequestCertificate,
# DescribeCertificate has no ResourceRecord yet (RequestCertificate API reference: the
# certificate's details are not available for several seconds; aws-sdk-js #2133,
# terraform-provider-aws #9627).
#
# Failure: once the domain is validated, ACM checks its CAA records and does not issue when a CAA
# record names no Amazon CA (ACM user guide, "(Optional) Configure a CAA record": "ACM checks for
# a CAA record after validating the domain"; the value must name amazon.com, amazontrust.com,
# awstrust.com or amazonaws.com). Here a CAA record set at the name or its closest ancestor (RFC
# 8659's tree climbing) in a public zone of the account without one of those in an `issue` tag
# (`issuewild` for a wildcard name, when the set has one) turns the certificate FAILED with
# FailureReason CAA_ERROR (CertificateDetail `FailureReason`), which is how a test makes one fail.
# A FAILED certificate stays so; a new request is needed (CertificateDetail `Status`: "delete the
# request, correct the issue ... and try again").
#
# Idempotency: "if you call RequestCertificate multiple times with the same idempotency token
# within one hour, ACM recognizes that you are requesting only one certificate and will issue
# only one" (ACM API reference, RequestCertificate `IdempotencyToken`), whatever its status and
# without checking the other parameters (AWS support, quoted in terraform-provider-aws #6666);
# moto reuses it only when the tags are equal. A token whose certificate was deleted within the
# hour makes a new one here (moto answers 500); what ACM does then is not documented (unverified).
#
# DeleteCertificate refuses a certificate in use (ACM API reference, DeleteCertificate: "You
# cannot delete an ACM certificate that is being used by another AWS service";
# ResourceInUseException); moto deletes it.

AMAZON_CAS = ("amazon.com", "amazontrust.com", "awstrust.com", "amazonaws.com")


def _patch_acm_strict():
    from moto import settings
    from moto.acm.models import AWSCertificateManagerBackend, CertBundle
    from moto.core.exceptions import JsonRESTError
    from moto.core.utils import utcnow
    from moto.route53.models import route53_backends

    settings.ACM_VALIDATION_WAIT = 10**9  # never issued by time alone
    orig_describe = CertBundle.describe
    orig_check = CertBundle.check

    def norm(name):
        return (name or "").rstrip(".").lower()

    def public_zones(cert):
        parts = cert.arn.split(":")
        try:
            backend = route53_backends[parts[4]][parts[1]]
        except KeyError:
            return []
        return [z for z in backend.zones.values() if not z.private_zone]

    def caa_allows(cert):
        public = public_zones(cert)
        names = {norm(n) for n in orig_describe(cert)["Certificate"].get("SubjectAlternativeNames", [])}
        names.add(norm(cert.common_name))
        for name in names:
            wildcard = name.startswith("*.")
            labels = name[2:].split(".") if wildcard else name.split(".")
            for i in range(len(labels)):
                candidate = ".".join(labels[i:])
                values = [
                    v
                    for z in public
                    for r in z.rrsets
                    if r.type == "CAA" and norm(r.name) == candidate
                    for v in r.records
                ]
                if not values:
                    continue
                entries = []
                for v in values:
                    fields = v.split(None, 2)
                    if len(fields) == 3:
                        entries.append((fields[1].lower(), fields[2].strip('"').split(";")[0].strip().lower()))
                tag = "issuewild" if wildcard and any(t == "issuewild" for t, _ in entries) else "issue"
                if not any(t == tag and ca in AMAZON_CAS for t, ca in entries):
                    return False
                break
        return True

    def validated(cert, options):
        public = public_zones(cert)
        for option in options:
            record = option.get("ResourceRecord")
            if record is None:
                return False
            found = any(
                r.type == "CNAME" and norm(r.name) == norm(record["Name"]) and any(
                    norm(v) == norm(record["Value"]) for v in r.records
                )
                for z in public
                for r in z.rrsets
            )
            if not found:
                return False
        return True

    def young(cert):
        return (utcnow() - cert.created_at).total_seconds() < PENDING

    def describe(self):
        result = orig_describe(self)
        options = result["Certificate"].get("DomainValidationOptions", [])
        if young(self):
            for option in options:
                option.pop("ResourceRecord", None)
        reason = getattr(self, "_dify_failure", None)
        if reason is not None and self.status == "FAILED":
            result["Certificate"]["FailureReason"] = reason
        return result

    def issue(cert):
        if cert.status != "PENDING_VALIDATION":
            return
        if caa_allows(cert):
            cert.status = "ISSUED"
        else:
            cert.status = "FAILED"
            cert._dify_failure = "CAA_ERROR"

    def check(self):
        orig_check(self)
        _settle_all()
        if self.type != "AMAZON_ISSUED" or self.status != "PENDING_VALIDATION" or young(self):
            return
        key = ("acm", self.arn)
        if _pending(key):
            return
        options = orig_describe(self)["Certificate"].get("DomainValidationOptions", [])
        if validated(self, options):
            _after(key, lambda: issue(self))

    orig_request = AWSCertificateManagerBackend.request_certificate
    orig_delete = AWSCertificateManagerBackend.delete_certificate

    def request_certificate(self, domain_name, idempotency_token, *args, **kwargs):
        if idempotency_token is not None:
            arn = self._get_arn_from_idempotency_token(idempotency_token)  # None after the hour
            if arn in self._certificates:
                return arn
            self._idempotency_tokens.pop(idempotency_token, None)
        return orig_request(self, domain_name, idempotency_token, *args, **kwargs)

    def delete_certificate(self, arn):
        cert = self._certificates.get(arn)
        if cert is not None and cert.in_use_by:
            raise JsonRESTError(
                "ResourceInUseException", f"Certificate {arn} is in use by {', '.join(cert.in_use_by)}"
            )
        return orig_delete(self, arn)

    CertBundle.describe = describe
    CertBundle.check = check
    AWSCertificateManagerBackend.request_certificate = request_certificate
    AWSCertificateManagerBackend.delete_certificate = delete_certificate


def install_strict():
    if not STRICT:
        return
    _patch_nat_strict()
    _patch_rds_strict()
    _patch_opensearch_pending()
    _patch_elasticache_strict()
    _patch_ec2_strict()
    _patch_eks_strict()
    _patch_opensearch_strict()
    _patch_acm_strict()
