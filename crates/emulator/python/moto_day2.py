"""Day-two rules of EKS that moto 5.2.5 lacks: how a cluster, node group or add-on that already
exists takes updates. Strict mode only (on unless DIFY_STACK_EMULATOR_STRICT=0), like the strict
rules of moto_ext.py, on whose EKS model it builds: launch.py runs `install(moto_ext)` after
`moto_ext.install()`.

Each rule names its AWS source; each is proven by a test in crates/eks/tests/day2.rs that calls
the SDK the way a broken provisioner would.

  * UpdateClusterConfig takes one type of update per call: the fields of a request fall into
    VpcConfigUpdate (subnetIds, securityGroupIds), EndpointAccessUpdate (endpointPublicAccess,
    endpointPrivateAccess, publicAccessCidrs), LoggingUpdate (logging), ... (EKS API reference,
    `Update.type` and `UpdateParam.type`). Fields of two types in one call fail with
    InvalidParameterException "Only one type of update - VpcConfigUpdate, LoggingUpdate or
    EndpointAccessUpdate can be allowed" (quoted in aws-cdk PR #30114; cluster-api-provider-aws
    #3553 and crossplane provider-aws #642 show the InvalidParameterException). Presence
    counts, not change: an unchanged logging block beside an endpoint change fails too (aws-cdk
    PR #22957).
  * UpdateClusterConfig is a partial update: the `resourcesVpcConfig` fields not sent keep their
    values (EKS user guide, "Configure network access to cluster API server endpoint": `aws eks
    update-cluster-config --resources-vpc-config endpointPublicAccess=...,publicAccessCidrs=...`
    sends no subnets). moto replaces the whole block.
  * A cluster update is refused while another is in progress (or the cluster is not ACTIVE):
    ResourceInUseException "Cannot EndpointAccessUpdate because cluster <name> currently has
    update <id> in progress" (aws-controllers-k8s community #1192; aws-cdk #33452 shows it for
    UpdateClusterConfig right after UpdateClusterVersion; cloud-custodian #9250 for a logging
    update after a VPC config update).
  * UpdateClusterConfig answers with the update (`update.id`, `type`, `status` InProgress, EKS
    API reference, UpdateClusterConfig response), and DescribeUpdate shows it InProgress until
    the cluster is ACTIVE again, then Successful (EKS API reference, DescribeUpdate: "When the
    status of the update is Successful, the update is complete"). moto answers with the cluster
    and has no DescribeUpdate.
  * UpdateNodegroupConfig / UpdateNodegroupVersion of a node group, and UpdateAddon of an
    add-on, that is CREATING, UPDATING or DELETING fail with ResourceInUseException (EKS API
    reference, UpdateNodegroupConfig, UpdateNodegroupVersion and UpdateAddon "Errors":
    ResourceInUseException, "The specified resource is in use"; EKS runs one update of a
    resource at a time, as for clusters above). A DEGRADED or *_FAILED one is not refused: an
    update is how it is repaired (EKS API reference, UpdateAddon `resolveConflicts`).
"""
import json
import threading
import uuid

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.eks import models as eks_models
from moto.eks import urls as eks_urls
from moto.eks.exceptions import InvalidParameterException, ResourceInUseException
from moto.eks.responses import EKSResponse

# The update type of each field of UpdateClusterConfig (EKS API reference, Update.type).
VPC_FIELDS = ("subnetIds", "securityGroupIds")
ACCESS_FIELDS = ("endpointPublicAccess", "endpointPrivateAccess", "publicAccessCidrs")
TOP_LEVEL_TYPES = {
    "logging": "LoggingUpdate",
    "accessConfig": "AccessConfigUpdate",
    "upgradePolicy": "UpgradePolicyUpdate",
    "zonalShiftConfig": "ZonalShiftConfigUpdate",
    "computeConfig": "AutoModeUpdate",
    "storageConfig": "AutoModeUpdate",
    "kubernetesNetworkConfig": "AutoModeUpdate",
    "remoteNetworkConfig": "RemoteNetworkConfigUpdate",
    "deletionProtection": "DeletionProtectionUpdate",
}
BUSY = ("CREATING", "UPDATING", "DELETING")
ONE_TYPE = "Only one type of update - VpcConfigUpdate, LoggingUpdate or EndpointAccessUpdate can be allowed"

_updates = {}  # (account, region, cluster) -> [update dicts], oldest first


def update_types(body):
    """The update types an UpdateClusterConfig request body asks for, in a stable order."""
    types = []
    vpc = body.get("resourcesVpcConfig") or {}
    if any(f in vpc for f in VPC_FIELDS):
        types.append("VpcConfigUpdate")
    if any(f in vpc for f in ACCESS_FIELDS):
        types.append("EndpointAccessUpdate")
    for field, kind in TOP_LEVEL_TYPES.items():
        if field in body and kind not in types:
            types.append(kind)
    return types


def install(ext):
    if not getattr(ext, "STRICT", True):
        return
    lock = getattr(ext, "_eks_lock", None) or threading.RLock()

    def cluster_busy(backend, name):
        """The update in progress on the cluster (its id, or "" when the cluster is merely not
        ACTIVE), or None."""
        ext._eks_settle(backend)
        cluster = backend.clusters.get(name)
        if cluster is None:
            return None
        pending = ext._eks_key(backend, "cluster", name, "") in ext._eks_busy
        if not pending and cluster.status == "ACTIVE":
            return None
        mine = _updates.get((backend.account_id, backend.region_name, name)) or []
        return mine[-1]["id"] if mine else ""

    def view(backend, name, update):
        status = update["status"]
        mine = _updates.get((backend.account_id, backend.region_name, name)) or []
        if status == "InProgress" and (cluster_busy(backend, name) is None or mine[-1] is not update):
            status = update["status"] = "Successful"
        return {
            "id": update["id"],
            "status": status,
            "type": update["type"],
            "params": update["params"],
            "createdAt": update["createdAt"],
            "errors": [],
        }

    # ---- UpdateClusterConfig: one type per call, refused while busy, answers the update.
    orig_update_config = EKSResponse.update_cluster_config

    def update_cluster_config(self):
        name = self._get_param("name")
        try:
            body = json.loads(self.body or "{}")
        except ValueError:
            body = {}
        types = update_types(body)
        if len(types) > 1:
            raise InvalidParameterException(clusterName=name, nodegroupName=None, addonName=None, message=ONE_TYPE)
        kind = types[0] if types else "ConfigUpdate"
        backend = self.eks_backend
        with lock:
            busy = cluster_busy(backend, name)
            if busy is not None:
                raise ResourceInUseException(
                    clusterName=name,
                    nodegroupName=None,
                    addonName=None,
                    message=f"Cannot {kind} because cluster {name} currently has update {busy} in progress",
                )
            orig_update_config(self)  # moto's answer (the cluster) is replaced by the update
            params = []
            vpc = body.get("resourcesVpcConfig") or {}
            for field, param in (
                ("subnetIds", "Subnets"),
                ("securityGroupIds", "SecurityGroups"),
                ("endpointPublicAccess", "EndpointPublicAccess"),
                ("endpointPrivateAccess", "EndpointPrivateAccess"),
                ("publicAccessCidrs", "PublicAccessCidrs"),
            ):
                if field in vpc:
                    params.append({"type": param, "value": json.dumps(vpc[field])})
            if "logging" in body:
                params.append({"type": "ClusterLogging", "value": json.dumps(body["logging"])})
            update = {
                "id": str(uuid.uuid4()),
                "status": "InProgress",
                "type": kind,
                "params": params,
                "createdAt": utcnow(),
            }
            _updates.setdefault((backend.account_id, backend.region_name, name), []).append(update)
            return ActionResult({"update": view(backend, name, update)})

    EKSResponse.update_cluster_config = update_cluster_config

    # ---- the partial update of resourcesVpcConfig (moto replaces the block).
    B = eks_models.EKSBackend
    orig_backend_update = B.update_cluster_config

    def merged_update(self, name, resources_vpc_config=None, **kwargs):
        cluster = self.clusters.get(name)
        if cluster is not None and resources_vpc_config:
            merged = dict(cluster.resources_vpc_config or {})
            merged.update(resources_vpc_config)
            resources_vpc_config = merged
        return orig_backend_update(self, name=name, resources_vpc_config=resources_vpc_config, **kwargs)

    B.update_cluster_config = merged_update

    # ---- DescribeUpdate of a cluster update.
    def describe_update(self):
        name = self._get_param("name")
        update_id = self._get_param("updateId")
        backend = self.eks_backend
        with lock:
            for update in _updates.get((backend.account_id, backend.region_name, name)) or []:
                if update["id"] == update_id:
                    return ActionResult({"update": view(backend, name, update)})
        from moto.eks.exceptions import ResourceNotFoundException

        raise ResourceNotFoundException(
            clusterName=name,
            nodegroupName=None,
            fargateProfileName=None,
            addonName=None,
            message=f"No update found for ID: {update_id}",
        )

    EKSResponse.describe_update = describe_update
    eks_urls.url_paths["{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$"] = eks_urls.response.dispatch

    # ---- node group updates refused while the node group is not ACTIVE.
    for method in ("update_nodegroup_config", "update_nodegroup_version"):
        orig = getattr(B, method, None)
        if orig is None:
            continue

        def refuse_busy_nodegroup(self, cluster_name, nodegroup_name, *args, _orig=orig, **kwargs):
            with lock:
                ext._eks_settle(self)
                cluster = self.clusters.get(cluster_name)
                ng = cluster.nodegroups.get(nodegroup_name) if cluster else None
                if ng is not None and ng.status in BUSY:
                    raise ResourceInUseException(
                        clusterName=cluster_name,
                        nodegroupName=nodegroup_name,
                        addonName=None,
                        message=f"Nodegroup {nodegroup_name} is {ng.status}; an update is in progress",
                    )
                return _orig(self, cluster_name, nodegroup_name, *args, **kwargs)

        setattr(B, method, refuse_busy_nodegroup)

    # ---- add-on updates refused while the add-on is not ACTIVE.
    orig_update_addon = EKSResponse.update_addon

    def update_addon(self):
        cluster = self._get_param("name")
        name = self._get_param("addonName")
        backend = self.eks_backend
        with lock:
            ext._eks_settle(backend)
            addon = (backend.__dict__.get("_dify_ext", {}).get(cluster) or {"addons": {}})["addons"].get(name)
            status = (addon or {}).get("status", "ACTIVE")
            if addon is not None and status in BUSY:
                raise ResourceInUseException(
                    clusterName=cluster,
                    nodegroupName=None,
                    addonName=name,
                    message=f"Addon {name} is {status}; an update is in progress",
                )
            return orig_update_addon(self)

    EKSResponse.update_addon = update_addon
