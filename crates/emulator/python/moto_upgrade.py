"""Version upgrades that moto 5.2.5 lacks: Kubernetes on EKS (control plane, node groups, upgrade
insights), OpenSearch engine versions and Aurora engine versions. Strict mode only (on unless
DIFY_STACK_EMULATOR_STRICT=0), like the strict rules of moto_ext.py on whose models it builds:
launch.py runs `install(moto_ext, moto_day2)` after the others. An upgrade in progress lasts
three times DIFY_STACK_EMULATOR_PENDING_SECONDS of wall time (the emulator's pending time; AWS
takes minutes to hours), settled by moto_ext's timers like every pending state.

Each rule names its AWS source; "unverified" marks what the sources do not settle (a message's
exact wording, mostly). Each is proven by a test in crates/eks/tests/upgrade_rules.rs or
crates/datastores/tests/upgrade_rules.rs that calls the SDK the way a broken caller would.

EKS, UpdateClusterVersion (moto has none; the strict patch of moto_ext skipped it):
  * One minor at a time: "Because Amazon EKS runs a highly available control plane, you can
    update only one minor version at a time" (EKS user guide, "Update existing cluster to new
    Kubernetes version", Detailed considerations); "Once you upgrade a cluster, you can't
    downgrade" (same page). A skip, a downgrade or the same version fails with
    InvalidParameterException "Unsupported Kubernetes minor version update from 1.33 to 1.35"
    (the message quoted for a downgrade in rancher/rancher #40673 and #43316; for a skip in
    public runbooks with InvalidParameterException; for the same version: unverified).
  * Refused while the cluster is not ACTIVE or has an update in progress: ResourceInUseException
    "Cannot VersionUpdate because cluster <name> currently has update <id> in progress" (the
    form of moto_day2's refusal, which cites aws-cdk #33452 for ResourceInUseException right
    after UpdateClusterVersion; EKS API reference, UpdateClusterVersion "Errors").
  * Node groups may trail: "If the kubelet on your managed and Fargate nodes is on Kubernetes
    version 1.25 or newer, you can update your cluster up to three versions ahead without
    updating the kubelet version" (same user guide page; two for kubelets 1.24 or older, as the
    page said in 2024, quoted in aws/aws-eks-best-practices #476; aws/containers-roadmap #2250
    points to #1473, where EKS dropped the old "must match" rule). A cluster
    update that would leave a managed node group further behind fails with
    InvalidParameterException "Nodegroups <names> must be updated to match cluster version
    <current> before updating cluster version" (terraform-provider-aws #19478,
    awsdocs/amazon-eks-user-guide PR #475; the code as quoted in a terraform module's README).
  * The update: UPDATING, then ACTIVE with the new version and platform version ("During an
    update, the cluster status moves to UPDATING ... When the update is complete ... the cluster
    status moves to Active", EKS API reference, UpdateClusterVersion). The answer is the update
    (type VersionUpdate, params Version and PlatformVersion, status InProgress; user guide,
    "Update cluster - AWS CLI"), kept in moto_day2's registry so that DescribeUpdate shows it
    and UpdateClusterConfig is refused while it runs. `force` is accepted and changes nothing:
    EKS "has temporarily rolled back" refusing upgrades over insight findings (user guide,
    "Prepare for Kubernetes version upgrades with cluster insights"; containers-roadmap #2570).

EKS, CreateNodegroup / UpdateNodegroupVersion:
  * CreateNodegroup without `version` uses the cluster's ("By default, the Kubernetes version of
    the cluster is used", EKS API reference, CreateNodegroup `version`), and without
    `releaseVersion` the latest AMI release of that version (same, `releaseVersion`). moto uses
    1.19 for both, whatever the cluster runs.
  * UpdateNodegroupVersion without `version` moves the node group to the cluster's version
    (aws-sdk-eks, UpdateNodegroupVersionInput `version`: "If no version is specified, then the
    node group will be updated to match the cluster's current Kubernetes version"), with a new
    `releaseVersion` (the latest AMI release of that version unless one is given).
  * Never newer than the control plane (eksctl #3727: EKS refuses node groups ahead of the
    cluster) and never back ("You cannot roll back a node group to an earlier Kubernetes version
    or AMI version", EKS API reference, UpdateNodegroupVersion): InvalidParameterException
    (message wording unverified). A `releaseVersion` of another Kubernetes version fails with
    InvalidParameterException "Requested Nodegroup release version <r> is invalid. Allowed
    release version is <r'>" (terraform-provider-aws #14492, eksctl #3201).
  * Refused while the node group is CREATING, UPDATING or DELETING: ResourceInUseException (EKS
    API reference, UpdateNodegroupVersion "Errors"; the rule moto_day2 states, which could not
    apply because moto had no UpdateNodegroupVersion).
  * The node group goes UPDATING, then ACTIVE with the new version and release version; the
    answer is the update (type VersionUpdate, params Version and ReleaseVersion), shown by
    DescribeUpdate with `nodegroupName` (EKS API reference, DescribeUpdate: "nodegroupName ...
    required if the update is a node group update").
  * The AMI release versions per Kubernetes minor (RELEASES below) are plausible, not EKS's
    published list; values are opaque.

EKS, ListInsights / DescribeInsight (moto has neither): UPGRADE_READINESS insights about the next
minor (kubernetesVersion = the cluster's minor + 1), with the names, descriptions and reasons
of the example in the EKS user guide ("Prepare for Kubernetes version upgrades with cluster
insights", "View cluster insights (AWS CLI)"): "Deprecated APIs removed in Kubernetes vX.XX",
"Kubelet version skew", "Cluster health issues", "EKS add-on version compatibility",
"kube-proxy version skew". All PASSING, except "Kubelet version skew", which is ERROR when a
managed node group would trail the next minor by more than the skew allowed above (an ERROR
insight "typically means the impacted Kubernetes version is N+1 of the current cluster
version", same page). Filters (categories, kubernetesVersions, statuses) apply; one page.
  Test fixture, not an AWS rule: POST /moto-api/dify-stack/insight sets an insight's status for
  a cluster, standing for what EKS would find on a real cluster (e.g. "the cluster serves a
  deprecated API"). Parameters (query string or JSON body): account, region (us-west-2),
  cluster, insight (deprecated-apis | kubelet-skew | cluster-health | addon-compatibility |
  kube-proxy-skew), status (PASSING | WARNING | ERROR | UNKNOWN), reason, and optionally
  version (the insight's Kubernetes version it holds for; default: the cluster's next minor);
  reset=true forgets the cluster's settings. It answers the cluster's insights as JSON.

OpenSearch, UpgradeDomain / GetUpgradeStatus / GetUpgradeHistory (moto has none):
  * Only along the supported upgrade paths (OpenSearch developer guide, "Upgrading Amazon
    OpenSearch Service domains", Supported upgrade paths): OpenSearch 1.3 or 2.x to a later 2.x;
    OpenSearch 2.19 (only) or 3.x to a later 3.x ("If you're running OpenSearch 1.3 or 2.x, you
    must first upgrade to OpenSearch 2.19 before upgrading to OpenSearch 3.x"); OpenSearch 1.x to
    a later 1.x; Elasticsearch 7.x to a later 7.x or OpenSearch 1.x; Elasticsearch 6.8 to 7.x or
    OpenSearch 1.x; Elasticsearch 6.x to a later 6.x; 5.6 to 6.x; 5.x to a later 5.x. Anything
    else (a downgrade, a skip, the same version) fails with ValidationException (one of
    UpgradeDomain's documented errors, API reference; message wording unverified). GetCompatibleVersions for
    a domain answers the same paths (moto answers a fixed list without 2.19 -> 3.x).
  * Refused while the domain is processing (being created, changed or upgraded):
    ValidationException "A change/update is in progress. Please wait for it to complete before
    requesting another change." (terraform-provider-aws #38136 and
    aws-samples/siem-on-amazon-opensearch-service #444, for UpdateDomainConfig; the same refusal
    for UpgradeDomain is unverified). During an upgrade UpdateDomainConfig is refused the same
    way ("During an upgrade, you can't make configuration changes to the domain", developer
    guide, "Upgrading a domain (console)").
  * PerformCheckOnly=true runs the eligibility check only: the domain does not change.
  * The upgrade goes through PRE_UPGRADE_CHECK, SNAPSHOT and UPGRADE ("The upgrade process
    consists of three steps", developer guide; GetUpgradeStatus `UpgradeStep` and `StepStatus`,
    API reference); meanwhile DescribeDomain answers Processing=true and UpgradeProcessing=true
    ("True if OpenSearch Service is in the process of a version upgrade", API reference,
    DomainStatus), then the new EngineVersion. GetUpgradeHistory lists the upgrades and checks,
    newest first, with their steps.

Aurora, ModifyDBCluster with EngineVersion (moto applies any version at once):
  * A different major version needs AllowMajorVersionUpgrade: InvalidParameterCombination "The
    AllowMajorVersionUpgrade flag must be present when upgrading to a new major version." (RDS
    API reference, ModifyDBCluster `AllowMajorVersionUpgrade`: "You must allow major version
    upgrades when specifying a value for the EngineVersion parameter that is a different major
    version"; the message as the Aurora user guide shows it, "Upgrading the major version of an
    Aurora MySQL DB cluster", How to perform an in-place upgrade).
  * No downgrade: InvalidParameterCombination "Cannot upgrade aurora-postgresql from 11.17 to
    11.13" (nationalarchives/ds-caselaw-data-enrichment-service PR #167;
    terraform-aws-modules/terraform-aws-rds-aurora #308).
  * A major upgrade naming a DB cluster parameter group (or DBInstanceParameterGroupName) of
    another family than the new version's fails with InvalidParameterCombination "The Parameter
    Group <name> with DBParameterGroupFamily <family> cannot be used for this instance. Please
    use a Parameter Group with DBParameterGroupFamily <family'>" (the message as
    cloudposse/terraform-aws-rds-cluster #227 quotes it for an instance group; for a cluster
    group the wording is unverified; the API reference: "The DB parameter group must be in the
    same DB parameter group family as this DB cluster"). A group that does not exist fails with
    DBParameterGroupNotFound.
  * A major upgrade of a cluster whose instances use a custom DB parameter group needs
    DBInstanceParameterGroupName: InvalidParameterCombination "The current DB instance parameter
    group <name> is custom. You must explicitly specify a new DB instance parameter group,
    either default or custom, for the engine version upgrade." (terraform-provider-aws #35912,
    aws/aws-cdk #26072, aws/aws-sdk #392).
  * Without ApplyImmediately the change waits for the maintenance window (RDS API reference,
    ModifyDBCluster `EngineVersion`: "The change is applied during the next maintenance window
    unless ApplyImmediately is enabled"): the cluster stays available on its version with
    PendingModifiedValues.EngineVersion; the emulator's maintenance window never comes.
  * With ApplyImmediately the cluster and its instances are `upgrading`, then `available` with
    the new version ("It takes a few moments for the status of the cluster and associated DB
    instances to change to upgrading. The version numbers for the cluster and DB instances only
    change when the upgrade is finished", Aurora user guide, same page); on a major upgrade a
    default cluster parameter group becomes the new family's default. The rule of moto_ext that
    refuses ModifyDBCluster until the cluster is available still applies.

Not modelled: the upgrade insight refusal with `force` (rolled back by EKS, see above); add-on
versions checked against the cluster version; EKS upgrade rollback (VersionRollback); blue/green
details of OpenSearch upgrades (DescribeDomainChangeProgress); Aurora's pre-upgrade snapshot and
upgrade events; a custom DB cluster parameter group kept across a major upgrade (refused by RDS
per some reports; unverified).
"""
import json
import threading
import time
import uuid

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.eks import models as eks_models
from moto.eks import urls as eks_urls
from moto.eks.exceptions import InvalidParameterException, ResourceInUseException, ResourceNotFoundException
from moto.eks.responses import EKSResponse

BUSY = ("CREATING", "UPDATING", "DELETING")
# A version upgrade lasts this many times the emulator's pending time (AWS takes minutes to hours
# for one; the emulator keeps the order of things, and gives a caller a wider window to observe
# the upgrade in progress).
UPGRADE_FACTOR = 3
PLATFORM_AFTER_UPDATE = "eks.1"
# Latest AMI release version per Kubernetes minor (plausible; values are opaque).
RELEASES = {
    "1.29": "1.29.15-20250923",
    "1.30": "1.30.14-20250923",
    "1.31": "1.31.13-20250923",
    "1.32": "1.32.9-20250923",
    "1.33": "1.33.5-20250923",
    "1.34": "1.34.1-20250923",
    "1.35": "1.35.0-20260115",
}

_ng_updates = {}  # (account, region, cluster, node group) -> [update dicts], oldest first
_insight_settings = {}  # (account, region, cluster) -> {insight key: {status, reason, version, since}}
_os_upgrades = {}  # (account, region, domain) -> [upgrade records], oldest first


def minor(version):
    """(1, 33) for "1.33" or "1.33.5-2025..."; None when not a Kubernetes version."""
    try:
        parts = str(version).split("-")[0].split(".")
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def release_for(version):
    key = "%d.%d" % minor(version)
    return RELEASES.get(key, f"{key}.0-20260115")


def skew_allowed(kubelet):
    """Minors a kubelet may trail the API server by (EKS user guide, Update existing cluster)."""
    return 3 if kubelet >= (1, 25) else 2


def upgrade_seconds(ext):
    return float(getattr(ext, "PENDING", 0.3)) * UPGRADE_FACTOR


def _eks_upgrading(ext, backend, kind, cluster, name):
    """moto_ext's pending UPDATING state, for as long as an upgrade lasts."""
    ext._eks_busy_for(backend, kind, cluster, name, "UPDATING", "ACTIVE")
    key = ext._eks_key(backend, kind, cluster, name)
    status, _until, then = ext._eks_busy[key]
    ext._eks_busy[key] = (status, time.monotonic() + upgrade_seconds(ext), then)


def _after_upgrade(ext, key, on_done):
    """moto_ext's timer, for as long as an upgrade lasts."""
    ext._after(key, on_done)
    ext._timers[key] = (time.monotonic() + upgrade_seconds(ext), on_done)


def install(ext, day2=None):
    if not getattr(ext, "STRICT", True):
        return
    _install_eks(ext, day2)
    _install_opensearch(ext)
    _install_rds(ext)


# ================================================================ EKS


def _not_found(message, nodegroup=None):
    return ResourceNotFoundException(
        clusterName=None, nodegroupName=nodegroup, fargateProfileName=None, addonName=None, message=message
    )


def _invalid(message, cluster=None, nodegroup=None):
    return InvalidParameterException(clusterName=cluster, nodegroupName=nodegroup, addonName=None, message=message)


def _install_eks(ext, day2):
    lock = getattr(ext, "_eks_lock", None) or threading.RLock()
    cluster_updates = getattr(day2, "_updates", None)
    if cluster_updates is None:
        cluster_updates = {}
    B = eks_models.EKSBackend

    # ---- apply a pending version when the update settles (moto_ext settles by wall time and
    # sets ACTIVE through its module-level _set_status).
    orig_set_status = ext._set_status

    def set_status(target, status):
        orig_set_status(target, status)
        if status != "ACTIVE" or isinstance(target, dict):
            return
        pending = target.__dict__.pop("_dify_upgrade", None)
        if pending:
            for attr, value in pending.items():
                setattr(target, attr, value)

    ext._set_status = set_status

    def cluster_of(backend, name):
        ext._eks_settle(backend)
        cluster = backend.clusters.get(name)
        if cluster is None:
            raise _not_found(f"No cluster found for name: {name}.")
        return cluster

    def cluster_busy(backend, name, cluster):
        """The id of the update in progress ("" when the cluster is merely not ACTIVE), or None."""
        pending = ext._eks_key(backend, "cluster", name, "") in ext._eks_busy
        if not pending and cluster.status == "ACTIVE":
            return None
        mine = cluster_updates.get((backend.account_id, backend.region_name, name)) or []
        return mine[-1]["id"] if mine and mine[-1]["status"] == "InProgress" else ""

    def cluster_update_view(backend, name, update):
        mine = cluster_updates.get((backend.account_id, backend.region_name, name)) or []
        cluster = backend.clusters.get(name)
        if update["status"] == "InProgress" and (
            cluster is None or cluster_busy(backend, name, cluster) is None or mine[-1] is not update
        ):
            update["status"] = "Successful"
        return {k: update[k] for k in ("id", "status", "type", "params", "createdAt", "errors")}

    # ---- UpdateClusterVersion
    def update_cluster_version(self):
        name = self._get_param("name")
        target = str(self._get_param("version") or "")
        backend = self.eks_backend
        with lock:
            cluster = cluster_of(backend, name)
            busy = cluster_busy(backend, name, cluster)
            if busy is not None:
                why = (
                    f"currently has update {busy} in progress" if busy else f"is in {cluster.status} status"
                )
                raise ResourceInUseException(
                    clusterName=name,
                    nodegroupName=None,
                    addonName=None,
                    message=f"Cannot VersionUpdate because cluster {name} {why}",
                )
            current = str(cluster.version)
            have, want = minor(current), minor(target)
            if want is None or have is None or want[0] != have[0] or want[1] != have[1] + 1:
                raise _invalid(f"Unsupported Kubernetes minor version update from {current} to {target}", cluster=name)
            behind = sorted(
                ng_name
                for ng_name, ng in cluster.nodegroups.items()
                if minor(ng.version) is not None
                and want[1] - minor(ng.version)[1] > skew_allowed(minor(ng.version))
            )
            if behind:
                raise _invalid(
                    f"Nodegroups {', '.join(behind)} must be updated to match cluster version {current} "
                    "before updating cluster version",
                    cluster=name,
                )
            cluster.__dict__["_dify_upgrade"] = {"version": target, "platformVersion": PLATFORM_AFTER_UPDATE}
            _eks_upgrading(ext, backend, "cluster", name, "")
            update = {
                "id": str(uuid.uuid4()),
                "status": "InProgress",
                "type": "VersionUpdate",
                "params": [
                    {"type": "Version", "value": target},
                    {"type": "PlatformVersion", "value": PLATFORM_AFTER_UPDATE},
                ],
                "createdAt": utcnow(),
                "errors": [],
            }
            cluster_updates.setdefault((backend.account_id, backend.region_name, name), []).append(update)
            return ActionResult({"update": cluster_update_view(backend, name, update)})

    EKSResponse.update_cluster_version = update_cluster_version

    # ---- CreateNodegroup: the cluster's version and that version's latest AMI by default.
    orig_create_nodegroup = B.create_nodegroup

    def create_nodegroup(self, *args, **kwargs):
        cluster = self.clusters.get(kwargs.get("cluster_name") or (args[0] if args else None))
        if cluster is not None and not kwargs.get("version"):
            kwargs["version"] = cluster.version
        if kwargs.get("version") and not kwargs.get("release_version") and minor(kwargs["version"]):
            kwargs["release_version"] = release_for(kwargs["version"])
        return orig_create_nodegroup(self, *args, **kwargs)

    B.create_nodegroup = create_nodegroup

    # ---- UpdateNodegroupVersion
    def nodegroup_update_view(backend, cluster_name, ng_name, update):
        mine = _ng_updates.get((backend.account_id, backend.region_name, cluster_name, ng_name)) or []
        cluster = backend.clusters.get(cluster_name)
        ng = cluster.nodegroups.get(ng_name) if cluster else None
        pending = ext._eks_key(backend, "nodegroup", cluster_name, ng_name) in ext._eks_busy
        if update["status"] == "InProgress" and (ng is None or not pending or mine[-1] is not update):
            update["status"] = "Successful"
        return {k: update[k] for k in ("id", "status", "type", "params", "createdAt", "errors")}

    def update_nodegroup_version(self):
        cluster_name = self._get_param("name")
        ng_name = self._get_param("nodegroupName")
        wanted = self._get_param("version")
        release = self._get_param("releaseVersion")
        template = self._get_param("launchTemplate")
        backend = self.eks_backend
        with lock:
            cluster = cluster_of(backend, cluster_name)
            ng = cluster.nodegroups.get(ng_name)
            if ng is None:
                raise _not_found(f"No node group found for name: {ng_name}.", nodegroup=ng_name)
            pending = ext._eks_key(backend, "nodegroup", cluster_name, ng_name) in ext._eks_busy
            if pending or ng.status in BUSY:
                raise ResourceInUseException(
                    clusterName=cluster_name,
                    nodegroupName=ng_name,
                    addonName=None,
                    message=f"Nodegroup {ng_name} is {ng.status}; an update is in progress",
                )
            target = str(wanted or cluster.version)
            want, control, have = minor(target), minor(cluster.version), minor(ng.version)
            if want is None:
                raise _invalid(f"Requested Nodegroup version {target} is invalid", cluster_name, ng_name)
            if control is not None and want > control:
                raise _invalid(
                    f"Requested Nodegroup version {target} is invalid. Nodegroup version cannot be newer than the "
                    f"cluster version {cluster.version}",
                    cluster_name,
                    ng_name,
                )
            if have is not None and want < have:
                raise _invalid(
                    f"Requested Nodegroup version {target} is invalid. Cannot roll back a node group from version "
                    f"{ng.version}",
                    cluster_name,
                    ng_name,
                )
            allowed = release_for(target)
            if release and minor(release) != want:
                raise _invalid(
                    f"Requested Nodegroup release version {release} is invalid. Allowed release version is {allowed}",
                    cluster_name,
                    ng_name,
                )
            change = {"version": target, "release_version": release or allowed}
            params = [{"type": "Version", "value": target}, {"type": "ReleaseVersion", "value": change["release_version"]}]
            if template:
                merged = dict(ng.launch_template or {})
                merged.update(template)
                change["launch_template"] = merged
                if "version" in template:
                    params.append({"type": "LaunchTemplateVersion", "value": str(template["version"])})
            ng.__dict__["_dify_upgrade"] = change
            _eks_upgrading(ext, backend, "nodegroup", cluster_name, ng_name)
            update = {
                "id": str(uuid.uuid4()),
                "status": "InProgress",
                "type": "VersionUpdate",
                "params": params,
                "createdAt": utcnow(),
                "errors": [],
            }
            _ng_updates.setdefault((backend.account_id, backend.region_name, cluster_name, ng_name), []).append(update)
            return ActionResult({"update": nodegroup_update_view(backend, cluster_name, ng_name, update)})

    EKSResponse.update_nodegroup_version = update_nodegroup_version

    # ---- DescribeUpdate: node group updates here, cluster updates in moto_day2's registry.
    orig_describe_update = getattr(EKSResponse, "describe_update", None)

    def describe_update(self):
        name = self._get_param("name")
        update_id = self._get_param("updateId")
        ng_name = self._get_param("nodegroupName")
        backend = self.eks_backend
        with lock:
            ext._eks_settle(backend)
            if ng_name:
                for update in _ng_updates.get((backend.account_id, backend.region_name, name, ng_name)) or []:
                    if update["id"] == update_id:
                        return ActionResult({"update": nodegroup_update_view(backend, name, ng_name, update)})
            elif orig_describe_update is not None and day2 is not None:
                return orig_describe_update(self)
            else:
                for update in cluster_updates.get((backend.account_id, backend.region_name, name)) or []:
                    if update["id"] == update_id:
                        return ActionResult({"update": cluster_update_view(backend, name, update)})
        raise _not_found(f"No update found for ID: {update_id}")

    EKSResponse.describe_update = describe_update

    # ---- ListInsights / DescribeInsight
    def list_insights(self):
        name = self._get_param("name")
        try:
            body = json.loads(self.body or "{}")
        except ValueError:
            body = {}
        wanted = body.get("filter") or {}
        backend = self.eks_backend
        with lock:
            cluster = cluster_of(backend, name)
            found = insights_of(ext, backend, cluster)
        if wanted.get("categories"):
            found = [i for i in found if i["category"] in wanted["categories"]]
        if wanted.get("kubernetesVersions"):
            found = [i for i in found if i["kubernetesVersion"] in wanted["kubernetesVersions"]]
        if wanted.get("statuses"):
            found = [i for i in found if i["insightStatus"]["status"] in wanted["statuses"]]
        summaries = [{k: v for k, v in i.items() if k in SUMMARY_FIELDS} for i in found]
        return ActionResult({"insights": summaries})

    def describe_insight(self):
        name = self._get_param("name")
        insight_id = self._get_param("id")
        backend = self.eks_backend
        with lock:
            cluster = cluster_of(backend, name)
            for insight in insights_of(ext, backend, cluster):
                if insight["id"] == insight_id:
                    return ActionResult({"insight": insight})
        raise _not_found(f"No insight found for id: {insight_id}")

    EKSResponse.list_insights = list_insights
    EKSResponse.describe_insight = describe_insight

    dispatch = eks_urls.response.dispatch
    eks_urls.url_paths.update(
        {
            "{0}/clusters/(?P<name>[^/]+)/updates$": dispatch,
            "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$": dispatch,
            "{0}/clusters/(?P<name>[^/]+)/node-groups/(?P<nodegroupName>[^/]+)/update-version$": dispatch,
            "{0}/clusters/(?P<name>[^/]+)/insights$": dispatch,
            "{0}/clusters/(?P<name>[^/]+)/insights/(?P<id>[^/]+)$": dispatch,
        }
    )

    from moto.moto_api._internal import urls as api_urls

    api_urls.url_paths["{0}/moto-api/dify-stack/insight$"] = lambda r, u, h: _insight_route(ext, r, u, h)


SUMMARY_FIELDS = (
    "id", "name", "category", "kubernetesVersion", "lastRefreshTime", "lastTransitionTime", "description",
    "insightStatus",
)

# key -> (name template, description template, passing reason, recommendation, additional info)
INSIGHTS = {
    "deprecated-apis": (
        "Deprecated APIs removed in Kubernetes v{v}",
        "Checks for usage of deprecated APIs that are scheduled for removal in Kubernetes v{v}. Upgrading your "
        "cluster before migrating to the updated APIs supported by v{v} could cause application impact.",
        "No deprecated API usage detected within the last 30 days.",
        "Update manifests and API clients to use newer Kubernetes APIs if applicable before upgrading to "
        "Kubernetes v{v}.",
        {"Kubernetes API deprecation guide": "https://kubernetes.io/docs/reference/using-api/deprecation-guide/"},
    ),
    "kubelet-skew": (
        "Kubelet version skew",
        "Checks for kubelet versions of worker nodes in the cluster to see if upgrade would cause non compliance "
        "with supported Kubernetes kubelet version skew policy.",
        "Node kubelet versions are within the supported version skew of the next Kubernetes version.",
        "Upgrade your worker nodes to match the Kubernetes version of your cluster control plane.",
        {
            "Kubelet version skew policy": "https://kubernetes.io/releases/version-skew-policy/#kubelet",
            "Updating a managed node group": "https://docs.aws.amazon.com/eks/latest/userguide/update-managed-node-group.html",
        },
    ),
    "cluster-health": (
        "Cluster health issues",
        "Checks for any cluster health issues that prevent successful upgrade to the next Kubernetes version on EKS.",
        "No cluster health issues detected.",
        "Fix the cluster health issues before upgrading.",
        {},
    ),
    "addon-compatibility": (
        "EKS add-on version compatibility",
        "Checks version of installed EKS add-ons to ensure they are compatible with the next version of Kubernetes.",
        "All installed EKS add-on versions are compatible with next Kubernetes version.",
        "Upgrade your EKS add-ons to versions compatible with the next Kubernetes version.",
        {},
    ),
    "kube-proxy-skew": (
        "kube-proxy version skew",
        "Checks version of kube-proxy in cluster to see if upgrade would cause non compliance with supported "
        "Kubernetes kube-proxy version skew policy.",
        "kube-proxy versions match the cluster control plane version.",
        "Upgrade kube-proxy to match the Kubernetes version of your cluster control plane.",
        {},
    ),
}
STATUSES = ("PASSING", "WARNING", "ERROR", "UNKNOWN")


def _next_minor(cluster):
    have = minor(cluster.version)
    return "%d.%d" % (have[0], have[1] + 1) if have else str(cluster.version)


def insights_of(ext, backend, cluster):
    """The cluster's UPGRADE_READINESS insights, about its next minor."""
    version = _next_minor(cluster)
    settings = _insight_settings.get((backend.account_id, backend.region_name, cluster.name)) or {}
    now = utcnow()
    out = []
    for key, (name, description, reason, recommendation, info) in INSIGHTS.items():
        status, since, resources = "PASSING", cluster.created_at, []
        if key == "kubelet-skew":
            want = minor(version)
            behind = sorted(
                n for n, ng in cluster.nodegroups.items()
                if minor(ng.version) and want and want[1] - minor(ng.version)[1] > skew_allowed(minor(ng.version))
            )
            if behind:
                status = "ERROR"
                reason = (
                    f"Node groups {', '.join(behind)} would be more than the supported number of minor versions "
                    f"older than Kubernetes v{version}."
                )
                resources = [
                    {
                        "insightStatus": {"status": "ERROR", "reason": reason},
                        "arn": cluster.nodegroups[n].arn,
                        "kubernetesResourceUri": f"/nodegroups/{n}",
                    }
                    for n in behind
                ]
        chosen = settings.get(key)
        if chosen is not None and chosen.get("version") in (None, version):
            status, reason, since = chosen["status"], chosen.get("reason") or reason, chosen["since"]
        out.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"eks-insight/{cluster.arn}/{key}/{version}")),
                "name": name.format(v=version),
                "category": "UPGRADE_READINESS",
                "kubernetesVersion": version,
                "lastRefreshTime": now,
                "lastTransitionTime": since,
                "description": description.format(v=version),
                "insightStatus": {"status": status, "reason": reason},
                "recommendation": recommendation.format(v=version),
                "additionalInfo": info,
                "resources": resources,
                "categorySpecificSummary": {"deprecationDetails": [], "addonCompatibilityDetails": []},
            }
        )
    return out


def _insight_route(ext, request, full_url, headers):
    params = ext.fixture_params(request, full_url)
    method = getattr(request, "method", "GET")
    account = str(params.get("account", "")).strip()
    region = str(params.get("region", "") or "us-west-2").strip()
    cluster_name = str(params.get("cluster", "")).strip()
    if not account or not cluster_name:
        return 400, {"Content-Type": "text/plain"}, "account and cluster are required\n"
    try:
        backend = eks_models.eks_backends[account][region]
    except KeyError:
        return 404, {"Content-Type": "text/plain"}, "no such account or region\n"
    with getattr(ext, "_eks_lock", threading.RLock()):
        ext._eks_settle(backend)
        cluster = backend.clusters.get(cluster_name)
        if cluster is None:
            return 404, {"Content-Type": "text/plain"}, f"no cluster {cluster_name}\n"
        key = (account, region, cluster_name)
        if method == "POST":
            if str(params.get("reset", "")).strip().lower() in ("1", "true", "yes"):
                _insight_settings.pop(key, None)
            if "insight" in params:
                insight = str(params["insight"]).strip()
                status = str(params.get("status", "")).strip().upper()
                if insight not in INSIGHTS:
                    return 400, {"Content-Type": "text/plain"}, f"insight must be one of {', '.join(INSIGHTS)}\n"
                if status not in STATUSES:
                    return 400, {"Content-Type": "text/plain"}, f"status must be one of {', '.join(STATUSES)}\n"
                _insight_settings.setdefault(key, {})[insight] = {
                    "status": status,
                    "reason": params.get("reason"),
                    "version": params.get("version") or _next_minor(cluster),
                    "since": utcnow(),
                }
        listing = insights_of(ext, backend, cluster)
    for insight in listing:
        for field in ("lastRefreshTime", "lastTransitionTime"):
            insight[field] = insight[field].isoformat()
    return 200, {"Content-Type": "application/json"}, json.dumps({"insights": listing})


# ================================================================ OpenSearch

IN_PROGRESS_MESSAGE = "A change/update is in progress. Please wait for it to complete before requesting another change."
STEPS = ("PRE_UPGRADE_CHECK", "SNAPSHOT", "UPGRADE")
# Versions OpenSearch Service offers (developer guide, "Supported versions"; 3.3 from "Upgrading
# Amazon OpenSearch Service domains"). For GetCompatibleVersions.
OFFERED = (
    ["Elasticsearch_5.%d" % m for m in (1, 3, 5, 6)]
    + ["Elasticsearch_6.%d" % m for m in (0, 2, 3, 4, 5, 7, 8)]
    + ["Elasticsearch_7.%d" % m for m in (1, 4, 7, 8, 9, 10)]
    + ["OpenSearch_1.%d" % m for m in (0, 1, 2, 3)]
    + ["OpenSearch_2.%d" % m for m in (3, 5, 7, 9, 11, 13, 15, 17, 19)]
    + ["OpenSearch_3.%d" % m for m in (1, 3)]
)


def engine_version(text):
    """("OpenSearch", (2, 19)) for "OpenSearch_2.19"; None otherwise."""
    try:
        engine, number = str(text).split("_", 1)
        major, minor_ = number.split(".")[:2]
        engine = {"opensearch": "OpenSearch", "elasticsearch": "Elasticsearch"}[engine.lower()]
        return engine, (int(major), int(minor_))
    except (ValueError, KeyError):
        return None


def upgrade_allowed(current, target):
    """Whether OpenSearch Service upgrades `current` to `target` in place (developer guide,
    "Upgrading Amazon OpenSearch Service domains", Supported upgrade paths)."""
    have, want = engine_version(current), engine_version(target)
    if have is None or want is None:
        return False
    (src, s), (dst, t) = have, want
    if src == "OpenSearch":
        if dst != "OpenSearch" or t <= s:
            return False
        if t[0] == 3:
            return s == (2, 19) or s[0] == 3
        if t[0] == 2:
            return s == (1, 3) or s[0] == 2
        return s[0] == 1 and t[0] == 1
    if dst == "OpenSearch":
        return t[0] == 1 and (s[0] == 7 or s == (6, 8))
    if t <= s:
        return False
    if s[0] == 7:
        return t[0] == 7
    if s == (6, 8):
        return t[0] == 7
    if s[0] == 6:
        return t[0] == 6
    if s == (5, 6):
        return t[0] == 6
    return s[0] == 5 and t[0] == 5


def _os_error(code, message):
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError(code, message)


def _install_opensearch(ext):
    from moto.opensearch import models as os_models
    from moto.opensearch.exceptions import ResourceNotFoundException as DomainNotFound
    from moto.opensearch.responses import OpenSearchServiceResponse

    D = os_models.OpenSearchDomain
    B = os_models.OpenSearchServiceBackend

    orig_to_dict = D.to_dict

    def to_dict(self):
        out = orig_to_dict(self)
        out["UpgradeProcessing"] = bool(self.__dict__.get("_dify_upgrading"))
        return out

    D.to_dict = to_dict

    def upgrading(backend, name):
        records = _os_upgrades.get((backend.account_id, backend.region_name, name)) or []
        return bool(records) and not records[-1]["check_only"] and records[-1]["done"] is None

    orig_update = B.update_domain_config

    def update_domain_config(self, domain_name, *args, **kwargs):
        ext._settle_all()
        if upgrading(self, domain_name):
            raise _os_error("ValidationException", IN_PROGRESS_MESSAGE)
        return orig_update(self, domain_name, *args, **kwargs)

    B.update_domain_config = update_domain_config

    def domain_of(resp, name):
        ext._settle_all()
        backend = resp.opensearch_backend
        domain = backend.domains.get(name)
        if domain is None:
            raise DomainNotFound(name)
        return backend, domain

    def record_view(record):
        elapsed = time.monotonic() - record["started"]
        steps = STEPS[:1] if record["check_only"] else STEPS
        total = upgrade_seconds(ext)
        share = total / len(steps) if total > 0 else 0
        items = []
        for i, step in enumerate(steps):
            begun = elapsed >= share * i
            finished = record["done"] is not None or elapsed >= share * (i + 1)
            if not begun and record["done"] is None:
                break
            items.append(
                {
                    "UpgradeStep": step,
                    "UpgradeStepStatus": "SUCCEEDED" if finished else "IN_PROGRESS",
                    "Issues": [],
                    "ProgressPercent": 100.0 if finished else 50.0,
                }
            )
        status = "SUCCEEDED" if record["done"] is not None else "IN_PROGRESS"
        return status, items

    def upgrade_domain(self):
        name = self._get_param("DomainName")
        target = self._get_param("TargetVersion")
        check_only = bool(self._get_param("PerformCheckOnly"))
        backend, domain = domain_of(self, name)
        current = domain.engine_version.options
        if domain.processing or domain.deleted or upgrading(backend, name):
            raise _os_error("ValidationException", IN_PROGRESS_MESSAGE)
        if not upgrade_allowed(current, target):
            raise _os_error(
                "ValidationException",
                f"Upgrade from {current} to {target} is not supported. See GetCompatibleVersions for the versions "
                "this domain can be upgraded to.",
            )
        record = {
            "id": str(uuid.uuid4()),
            "name": f"Upgrade from {current} to {target}",
            "target": target,
            "check_only": check_only,
            "started": time.monotonic(),
            "start_time": utcnow(),
            "done": None,
        }
        _os_upgrades.setdefault((backend.account_id, backend.region_name, name), []).append(record)
        key = ("os-upgrade", backend.account_id, name)

        def finish():
            record["done"] = utcnow()
            if check_only:
                return
            domain.engine_version.options = target
            domain.engine_version.update_time = time.time()
            domain.processing = False
            domain.__dict__["_dify_upgrading"] = False

        if not check_only:
            domain.processing = True
            domain.__dict__["_dify_upgrading"] = True
        _after_upgrade(ext, key, finish)
        advanced = self._get_param("AdvancedOptions") or {}
        return json.dumps(
            {
                "UpgradeId": record["id"],
                "DomainName": name,
                "TargetVersion": target,
                "PerformCheckOnly": check_only,
                "AdvancedOptions": advanced,
                "ChangeProgressDetails": {"ChangeId": record["id"], "Message": record["name"]},
            }
        )

    def _domain_name_from_path(resp):
        # GET /2021-01-01/opensearch/upgradeDomain/{DomainName}/status|history
        parts = resp.parsed_url.path.rstrip("/").split("/")
        return resp._get_param("DomainName") or (parts[-2] if len(parts) >= 2 else None)

    def get_upgrade_status(self):
        name = _domain_name_from_path(self)
        backend, _ = domain_of(self, name)
        records = _os_upgrades.get((backend.account_id, backend.region_name, name)) or []
        if not records:
            return json.dumps({})
        record = records[-1]
        _, items = record_view(record)
        last = items[-1]
        return json.dumps(
            {"UpgradeStep": last["UpgradeStep"], "StepStatus": last["UpgradeStepStatus"], "UpgradeName": record["name"]}
        )

    def get_upgrade_history(self):
        name = _domain_name_from_path(self)
        backend, _ = domain_of(self, name)
        records = _os_upgrades.get((backend.account_id, backend.region_name, name)) or []
        out = []
        for record in reversed(records[-10:]):
            status, items = record_view(record)
            out.append(
                {
                    "UpgradeName": record["name"],
                    "StartTimestamp": record["start_time"].timestamp(),
                    "UpgradeStatus": status,
                    "StepsList": items,
                }
            )
        return json.dumps({"UpgradeHistories": out})

    orig_compatible = OpenSearchServiceResponse.get_compatible_versions

    def get_compatible_versions(self):
        name = self._get_param("domainName")
        if not name:
            return orig_compatible(self)
        _, domain = domain_of(self, name)
        current = domain.engine_version.options
        targets = [v for v in OFFERED if upgrade_allowed(current, v)]
        return json.dumps({"CompatibleVersions": [{"SourceVersion": current, "TargetVersions": targets}]})

    OpenSearchServiceResponse.upgrade_domain = upgrade_domain
    OpenSearchServiceResponse.get_upgrade_status = get_upgrade_status
    OpenSearchServiceResponse.get_upgrade_history = get_upgrade_history
    OpenSearchServiceResponse.get_compatible_versions = get_compatible_versions
    # Requests signed for "es" (the OpenSearch API's signing name) are routed by moto/es/urls.py.
    from moto.es import urls as es_urls

    dispatch = OpenSearchServiceResponse.dispatch
    es_urls.url_paths.update(
        {
            "{0}/2021-01-01/opensearch/upgradeDomain$": dispatch,
            "{0}/2021-01-01/opensearch/upgradeDomain/(?P<DomainName>[^/]+)/status$": dispatch,
            "{0}/2021-01-01/opensearch/upgradeDomain/(?P<DomainName>[^/]+)/history$": dispatch,
        }
    )


# ================================================================ RDS (Aurora)


def rds_major(engine, version):
    """The major version as RDS names parameter group families: "17" for aurora-postgresql 17.5,
    "9.6" for 9.6.x, "8.0" for aurora-mysql 8.0.mysql_aurora.3.04.0."""
    parts = str(version).split(".")
    if "mysql" in str(engine) or (parts and parts[0].isdigit() and int(parts[0]) < 10):
        return ".".join(parts[:2])
    return parts[0]


def family(engine, version):
    return f"{engine}{rds_major(engine, version)}"


def version_key(version):
    out = []
    for part in str(version).replace("-", ".").split("."):
        out.append((0, int(part), "") if part.isdigit() else (1, 0, part))
    return tuple(out)


def _install_rds(ext):
    from moto.rds import models as rds_models
    from moto.rds.exceptions import (
        DBClusterParameterGroupNotFoundError,
        DBParameterGroupNotFoundError,
        InvalidParameterCombination,
    )

    B = rds_models.RDSBackend
    inner_modify = B.modify_db_cluster  # moto_ext's strict wrapper around moto's

    def group_family(groups, name, default_family_of):
        """The family of a parameter group: a stored group's, or the one a default name carries."""
        stored = groups.get(str(name).lower())
        if stored is not None:  # a cluster group names it db_parameter_group_family, an instance group family
            return getattr(stored, "db_parameter_group_family", None) or getattr(stored, "family", None)
        if str(name).startswith("default."):
            return default_family_of(name)
        return None

    def default_family(name):
        return str(name)[len("default."):]

    def modify_db_cluster(self, kwargs):
        ext._settle_all()
        cluster_id = kwargs.get("db_cluster_identifier")
        cluster = self.clusters.get(cluster_id)
        new = kwargs.get("engine_version")
        # moto's DBCluster.status turns "creating" into "available" when read: peek at the field so
        # that moto_ext's refusal of a cluster that is not available still sees it.
        status = cluster.__dict__.get("_status", None) if cluster is not None else None
        if cluster is None or not new or new == cluster.engine_version or status not in (None, "available"):
            return inner_modify(self, kwargs)  # moto's and moto_ext's answers (not found, not available)
        engine, old = cluster.engine, cluster.engine_version
        if version_key(new) < version_key(old):
            raise InvalidParameterCombination(f"Cannot upgrade {engine} from {old} to {new}")
        major = rds_major(engine, new) != rds_major(engine, old)
        new_family = family(engine, new)
        cluster_group = kwargs.get("db_cluster_parameter_group_name")
        instance_group = kwargs.get("db_instance_parameter_group_name")
        if major:
            if not kwargs.get("allow_major_version_upgrade"):
                raise InvalidParameterCombination(
                    "The AllowMajorVersionUpgrade flag must be present when upgrading to a new major version."
                )
            for name, groups, missing in (
                (cluster_group, self.db_cluster_parameter_groups, DBClusterParameterGroupNotFoundError),
                (instance_group, self.db_parameter_groups, DBParameterGroupNotFoundError),
            ):
                if not name:
                    continue
                found = group_family(groups, name, default_family)
                if found is None:
                    raise missing(name)
                if found != new_family:
                    raise InvalidParameterCombination(
                        f"The Parameter Group {name} with DBParameterGroupFamily {found} cannot be used for this "
                        f"instance. Please use a Parameter Group with DBParameterGroupFamily {new_family}"
                    )
            if not instance_group:
                for member in members_of(self, cluster):
                    current = getattr(member, "db_parameter_group_name", None)
                    if current and not str(current).startswith("default."):
                        raise InvalidParameterCombination(
                            f"The current DB instance parameter group {current} is custom. You must explicitly "
                            "specify a new DB instance parameter group, either default or custom, for the engine "
                            "version upgrade."
                        )
        rest = dict(kwargs)
        for field in ("engine_version", "allow_major_version_upgrade", "db_instance_parameter_group_name"):
            rest.pop(field, None)
        if major:
            rest.pop("db_cluster_parameter_group_name", None)
        if not kwargs.get("apply_immediately"):
            answer = inner_modify(self, rest)
            stored = self.clusters.get(answer.db_cluster_identifier) or cluster
            pending = dict(getattr(stored, "_dify_pending", None) or {})
            pending["EngineVersion"] = new
            for target in (stored, answer):
                target.__dict__["_dify_pending"] = pending
            return answer
        answer = inner_modify(self, rest)
        stored = self.clusters.get(answer.db_cluster_identifier) or cluster
        upgrading_members = members_of(self, stored)
        for target in [stored, answer] + upgrading_members:
            target.status = "upgrading"
        old_group = stored.parameter_group

        def finish():
            stored.engine_version = new
            if major:
                if cluster_group:
                    stored.parameter_group = cluster_group
                elif str(old_group).startswith("default."):
                    stored.parameter_group = f"default.{new_family}"
            elif cluster_group:
                stored.parameter_group = cluster_group
            for member in upgrading_members:
                if instance_group:
                    member.db_parameter_group_name = instance_group
                if member.status == "upgrading":
                    member.status = "available"
            if stored.status == "upgrading":
                stored.status = "available"
            stored.__dict__.pop("_dify_pending", None)

        key = ("rds-cluster", self.account_id, stored.db_cluster_identifier)
        _after_upgrade(ext, key, finish)
        return answer

    def members_of(backend, cluster):
        out = []
        for database in backend.databases.values():
            if getattr(database, "db_cluster_identifier", None) == cluster.db_cluster_identifier:
                out.append(database)
        return out

    B.modify_db_cluster = modify_db_cluster

    # PendingModifiedValues.EngineVersion of a deferred upgrade.
    C = rds_models.DBCluster
    prop = getattr(C, "pending_modified_values", None)

    def pending_modified_values(self):
        pending = self.__dict__.get("_dify_pending")
        if pending:
            return dict(pending)
        if isinstance(prop, property):
            return prop.fget(self)
        return None

    C.pending_modified_values = property(pending_modified_values)
