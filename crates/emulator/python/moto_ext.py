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

# Default add-on versions per Kubernetes version (a plausible catalogue; values are opaque).
CATALOGUE = {
    "vpc-cni": {"1.32": "v1.19.2-eksbuild.1", "1.33": "v1.19.5-eksbuild.3", "1.34": "v1.20.1-eksbuild.1"},
    "coredns": {"1.32": "v1.11.4-eksbuild.2", "1.33": "v1.12.1-eksbuild.2", "1.34": "v1.12.3-eksbuild.1"},
    "kube-proxy": {"1.32": "v1.32.0-eksbuild.2", "1.33": "v1.33.0-eksbuild.2", "1.34": "v1.34.0-eksbuild.1"},
    "eks-pod-identity-agent": {"1.32": "v1.3.4-eksbuild.1", "1.33": "v1.3.7-eksbuild.2", "1.34": "v1.3.8-eksbuild.1"},
    "aws-ebs-csi-driver": {"1.32": "v1.40.0-eksbuild.1", "1.33": "v1.44.0-eksbuild.1", "1.34": "v1.48.0-eksbuild.1"},
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
        "status": "ACTIVE",
        "addonVersion": addon["version"],
        "addonArn": f"arn:aws:eks:{resp.region}:{resp.current_account}:addon/{cluster_name}/{addon['name']}/x",
        "tags": addon["tags"],
        "health": {"issues": []},
    }


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
    state["addons"][name] = {"name": name, "version": version, "tags": self._get_param("tags") or {}}
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
    from moto.rdsdata import models as data_models

    create = re.compile(r'^\s*CREATE\s+DATABASE\s+"?([A-Za-z0-9_]+)"?\s*;?\s*$', re.I)
    listing = re.compile(r"^\s*SELECT\s+datname\s+FROM\s+pg_database", re.I)

    def execute_statement(self, resource_arn, sql):
        dbs = self.__dict__.setdefault("_dify_dbs", {}).setdefault(
            resource_arn, ["postgres", "template0", "template1"]
        )
        m = create.match(sql)
        if m:
            if m.group(1) in dbs:
                from moto.core.exceptions import JsonRESTError

                raise JsonRESTError("BadRequestException", f'database "{m.group(1)}" already exists')
            dbs.append(m.group(1))
            return data_models.QueryResults(records=[])
        if listing.match(sql):
            return data_models.QueryResults(records=[[{"stringValue": d}] for d in dbs])
        return data_models.QueryResults(records=[])

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


def install():
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
