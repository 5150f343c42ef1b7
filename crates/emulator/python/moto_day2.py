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

RDS Data API rules (issue 28 item 5), on moto_ext.py's stateful Data API (`_patch_rdsdata`). moto
runs any statement for any `resourceArn` and never reads `secretArn`. dify-stack calls only
ExecuteStatement (crates/datastores/src/sdk/rds.rs), which is all moto 5.2.5 serves
(BeginTransaction and BatchExecuteStatement are not routed at all). Proven by
crates/datastores/tests/data_api_rules.rs. In the order AWS meets them:

  * A `resourceArn` that names no DB cluster of the account and region, or a cluster whose HTTP
    endpoint is not enabled (CreateDBCluster `EnableHttpEndpoint` false and no EnableHttpEndpoint
    since), fails with HttpEndpointNotEnabledException (RDS Data API reference, ExecuteStatement
    "Errors": "The HTTP endpoint for using RDS Data API isn't enabled for the DB cluster", HTTP
    400), message "HttpEndpoint is not enabled for resource <arn>" (quoted from CloudWatch in a
    public incident write-up, for calls against an Aurora cluster that had been deleted: the
    Data API answers a missing cluster like a disabled endpoint; koxudaxi/local-data-api
    `resources/resource.py` answers an unknown resource "HttpEndPoint is not enabled for <arn>"
    too, as Serverless v1's BadRequestException). Verified: the code for a disabled endpoint
    (API reference); the message text and the code for an unknown cluster rest on that one
    quoted report: unverified against AWS documentation.
  * A `secretArn` Secrets Manager cannot read (no such secret, or one scheduled for deletion)
    fails with SecretsErrorException (API reference: "There was a problem with the Secrets
    Manager secret used with the request, caused by ... The secret provided wasn't found"),
    message "Error fetching secret <arn> : Secrets Manager can't find the specified secret."
    (the text koxudaxi/local-data-api `secret_manager.py` reproduces from Serverless v1, where it
    came as BadRequestException; the v2 text is unverified).
  * A secret that is not a JSON object with `username` and `password` fails with
    InvalidSecretException (API reference: "The Secrets Manager secret used with the request
    isn't valid"; message unverified).
  * A secret whose credentials are not a login of the cluster (the master user with the
    cluster's master password, or a role the Data API created WITH LOGIN PASSWORD) fails as
    PostgreSQL refuses the login: DatabaseErrorException 'FATAL: password authentication failed
    for user "<user>"; SQLState: 28P01'. The text is PostgreSQL's (SQLSTATE 28P01
    invalid_password), quoted through the Data API as "BadRequestException: FATAL: password
    authentication failed for user "masteruser"" (typeorm-aurora-data-api-driver #86, Serverless
    v1); for Serverless v2 and provisioned clusters BadRequestException is v1-only (API
    reference) and connection-time database errors come as DatabaseErrorException "...;
    SQLState: <code>" (aws-cli #8577, `database "<user>" does not exist; SQLState: 3D000`). The
    v2 code is inferred from that: unverified.
  * The cluster's master password: with ManageMasterUserPassword, RDS generates it and stores
    {"username": <master username>, "password": ...} in the secret it manages (RDS user guide,
    "Password management with Amazon RDS and AWS Secrets Manager"); moto writes a fixed
    {"username": "admin", "password": "P@55w0rd!"} whatever the master username. Here the
    secret holds the master username and a generated password, which becomes the cluster's;
    editing the secret's value afterwards (PutSecretValue) does not change the cluster's
    password, so the Data API then refuses the secret, as AWS does. Without a managed secret the
    password is the cluster's MasterUserPassword.

EC2 NAT gateways, in strict mode and out of it (fidelity, not a refusal; what the whole-account
leak checks of crates/dify-stack/tests/crash.rs and faults.rs need to be deterministic):

  * CreateNatGateway honours `ClientToken`: a request repeated with the same token and the same
    subnet and allocation id answers the gateway the first one created, without making another;
    the same token with other parameters fails with IdempotentParameterMismatch (EC2 developer
    guide, "Ensuring idempotency in Amazon EC2 API requests": CreateNatGateway is among the
    actions that support a client token). moto ignores the token, so every retry of a request
    whose response was lost made a gateway (or, the address being taken, an orphan interface).
  * A CreateNatGateway that fails leaves nothing behind. moto makes the gateway's network
    interface before it associates the Elastic IP, and keeps the interface when the association
    fails (`Resource.AlreadyAssociated`); AWS refuses the request without a trace.

RDS, in strict mode and out of it (the same need): CreateDBCluster with the identifier of a
cluster that exists fails with DBClusterAlreadyExistsFault "DB Cluster already exists" (RDS API
reference, CreateDBCluster "Errors": DBClusterAlreadyExistsFault, "The user already has a DB
cluster with the given identifier", HTTP 400). moto 5.2.5 replaces the cluster with a new one,
so an SDK retry of a create whose response was lost orphaned the first cluster's RDS-managed
master secret (and reset the cluster). moto checks instances (DBInstanceAlreadyExists), not
clusters.
"""
import json
import secrets
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
    _install_nat_idempotency()
    _install_rds_cluster_exists()
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

    _install_rdsdata_rules()


# ---------------------------------------------------------------- RDS Data API


def _install_rdsdata_rules():
    from moto.core.exceptions import JsonRESTError
    from moto.rds import models as rds_models
    from moto.rdsdata.responses import RDSDataServiceResponse
    from moto.secretsmanager.models import secretsmanager_backends

    # ---- the managed master secret: the master username, a generated password that is the
    # cluster's (moto writes a fixed "admin" / "P@55w0rd!").
    def generate_secret_string(self):
        password = secrets.token_urlsafe(24)
        self.resource._dify_master_password = password
        username = getattr(self.resource, "master_username", None) or "admin"
        return json.dumps({"username": username, "password": password})

    rds_models.MasterUserSecret._generate_secret_string = generate_secret_string

    def master_password(cluster):
        if getattr(cluster, "manage_master_user_password", False):
            return getattr(cluster, "_dify_master_password", None)
        return getattr(cluster, "master_user_password", None)

    def refuse(code, message):
        raise JsonRESTError(code, message)

    def check(response):
        arn = response._get_param("resourceArn") or ""
        secret_arn = response._get_param("secretArn") or ""
        account, region = response.current_account, response.region
        rds = rds_models.rds_backends[account][region]
        cluster = next((c for c in list(rds.clusters.values()) if c.db_cluster_arn == arn), None)
        if cluster is None or not cluster.http_endpoint_enabled:
            refuse("HttpEndpointNotEnabledException", f"HttpEndpoint is not enabled for resource {arn}")
        try:
            value = secretsmanager_backends[account][region].get_secret_value(secret_arn, None, None)
        except Exception:
            refuse(
                "SecretsErrorException",
                f"Error fetching secret {secret_arn} : Secrets Manager can't find the specified secret.",
            )
        try:
            creds = json.loads(value.get("SecretString") or "")
        except ValueError:
            creds = None
        if not isinstance(creds, dict) or not creds.get("username") or "password" not in creds:
            refuse("InvalidSecretException", "The Secrets Manager secret used with the request isn't valid")
        user, password = str(creds["username"]), str(creds["password"])
        pg = response.rdsdata_backend.__dict__.get("_dify_pg", {}).get(arn) or {}
        logins = dict(pg.get("roles") or {})
        logins[cluster.master_username] = master_password(cluster)
        if logins.get(user) is None or logins[user] != password:
            refuse(
                "DatabaseErrorException",
                f'FATAL: password authentication failed for user "{user}"; SQLState: 28P01',
            )

    orig_execute = RDSDataServiceResponse.execute_statement

    def execute_statement(self):
        check(self)
        return orig_execute(self)

    RDSDataServiceResponse.execute_statement = execute_statement


# ---------------------------------------------------------------- EC2 NAT gateways

_nat_tokens = {}  # (account, region, client token) -> (nat id, subnet id, allocation id)
_nat_lock = threading.Lock()


def _install_nat_idempotency():
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.nat_gateways import NatGateway
    from moto.ec2.responses.nat_gateways import NatGateways
    from moto.ec2.utils import add_tag_specification

    # ---- a failed create leaves no network interface behind.
    orig_init = NatGateway.__init__

    def init(self, backend, *args, **kwargs):
        try:
            orig_init(self, backend, *args, **kwargs)
        except Exception:
            eni = self.__dict__.get("_eni")
            if eni is not None:
                backend.enis.pop(eni.id, None)
            raise

    NatGateway.__init__ = init

    # ---- ClientToken.
    def create_nat_gateway(self):
        subnet_id = self._get_param("SubnetId")
        allocation_id = self._get_param("AllocationId")
        token = self._get_param("ClientToken")
        backend = self.ec2_backend
        key = (backend.account_id, backend.region_name, token)
        with _nat_lock:
            if token and key in _nat_tokens:
                nat_id, subnet, allocation = _nat_tokens[key]
                if (subnet, allocation) != (subnet_id, allocation_id):
                    raise EC2ClientError(
                        "IdempotentParameterMismatch",
                        f"Client token {token} was used before with different parameters",
                    )
                nat = backend.nat_gateways.get(nat_id)
                if nat is not None:
                    return ActionResult({"ClientToken": token, "NatGateway": nat})
            nat = backend.create_nat_gateway(
                subnet_id=subnet_id,
                allocation_id=allocation_id,
                tags=add_tag_specification(self._get_param("TagSpecifications", [])),
                connectivity_type=self._get_param("ConnectivityType"),
            )
            if token:
                _nat_tokens[key] = (nat.id, subnet_id, allocation_id)
        return ActionResult({"ClientToken": token, "NatGateway": nat} if token else {"NatGateway": nat})

    NatGateways.create_nat_gateway = create_nat_gateway


# ---------------------------------------------------------------- RDS CreateDBCluster


def _install_rds_cluster_exists():
    from moto.rds import models as rds_models
    from moto.rds.exceptions import RDSClientError

    B = rds_models.RDSBackend
    orig_create = B.create_db_cluster

    def create_db_cluster(self, kwargs):
        if kwargs.get("db_cluster_identifier") in self.clusters:
            raise RDSClientError("DBClusterAlreadyExistsFault", "DB Cluster already exists")
        return orig_create(self, kwargs)

    B.create_db_cluster = create_db_cluster
