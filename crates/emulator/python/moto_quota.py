"""Elastic IP quota model for the dify-stack emulator (moto 5.2.5), for the network tier's
capacity preflight (dify_stack_network::preflight).

moto answers DescribeAccountAttributes with a fixed list (`vpc-max-elastic-ips` always "5",
moto/ec2/responses/account_attributes.py), ignores the AttributeName filter, and never refuses
AllocateAddress. This model:
  * answers `vpc-max-elastic-ips` (and `max-elastic-ips`) with the account's quota: 5 unless a
    test set another (the AWS default, VPC user guide, "Amazon VPC quotas": "Elastic IP addresses
    per Region: 5"), and honours `AttributeName.N` (EC2 API reference,
    DescribeAccountAttributes);
  * for an account whose quota a test set, refuses AllocateAddress once the region holds that
    many addresses, with EC2's `AddressLimitExceeded` ("The maximum number of addresses has been
    reached."); accounts left at the default keep moto's behaviour (no limit), so no other test
    changes;
  * can refuse DescribeAccountAttributes for an account (`UnauthorizedOperation`, as EC2 answers
    a caller without ec2:DescribeAccountAttributes), to show the preflight goes on with a note.

Service Quotas (the preflight's reads of VPCs, internet gateways, NAT gateways per AZ and EKS
clusters). moto 5.2.5 answers GetServiceQuota for the `vpc` service only, from its table of
defaults (moto/servicequotas/resources/default_quotas/vpc.py), and has no
GetAWSDefaultServiceQuota. This model:
  * answers GetServiceQuota with the value a test applied to the account (an increase granted,
    or a quota lowered to show a shortfall), else the default: moto's `vpc` table, plus the EKS
    quota the preflight reads, "Clusters" L-1194D53C, default 100 (EKS user guide, "Amazon EKS
    service quotas"); an unknown code answers `NoSuchResourceException` as AWS does (Service
    Quotas API reference, GetServiceQuota, Errors);
  * adds GetAWSDefaultServiceQuota over the same defaults (applied values play no part: "the
    default value does not reflect any quota increases", API reference);
  * can refuse both for an account with `AccessDeniedException`, as Service Quotas answers a
    caller without servicequotas:GetServiceQuota.

Set from a test with POST /moto-api/dify-stack/quota, parameters in the query string or a JSON
body: `account` (required), `value` (the Elastic IP quota, an integer) and/or `deny`
(`true`/`false`, refuses DescribeAccountAttributes); `service` + `code` + `value` apply a
Service Quotas value instead; `deny_quotas` (`true`/`false`) refuses the Service Quotas reads;
`reset=true` forgets the account's settings. GET answers the account's settings as JSON.
The settings hold for every region of the account.

Loaded by launch.py after moto_ext (its source as one more argument): `install()`.
"""
import json

DEFAULT_EIP_QUOTA = 5
_QUOTAS = {}  # account id -> Elastic IP quota set by a test
_DENIED = set()  # account ids whose DescribeAccountAttributes is refused
_APPLIED = {}  # (account id, service code, quota code) -> value a test applied
_QUOTAS_DENIED = set()  # account ids whose Service Quotas reads are refused

# Defaults moto's table lacks, for the quotas the preflight reads (source in the module docs).
_EXTRA_DEFAULTS = {
    ("eks", "L-1194D53C"): {"QuotaName": "Clusters", "Value": 100.0, "Adjustable": True, "GlobalQuota": False,
                            "ServiceName": "Amazon Elastic Kubernetes Service (Amazon EKS)"},
}


def quota(account_id):
    return _QUOTAS.get(account_id, DEFAULT_EIP_QUOTA)


def _describe_account_attributes(self):
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import EC2ClientError

    account = self.current_account
    if account in _DENIED:
        raise EC2ClientError("UnauthorizedOperation", "You are not authorized to perform this operation.")
    eips = str(quota(account))
    attributes = {
        "vpc-max-security-groups-per-interface": ["5"],
        "max-instances": ["20"],
        "supported-platforms": ["EC2", "VPC"],
        "default-vpc": ["none"],
        "max-elastic-ips": [eips],
        "vpc-max-elastic-ips": [eips],
    }
    wanted = self._get_param("AttributeNames", []) or []
    if wanted:
        attributes = {k: v for k, v in attributes.items() if k in wanted}
    return ActionResult(
        {
            "AccountAttributes": [
                {"AttributeName": k, "AttributeValues": [{"AttributeValue": v} for v in values]}
                for k, values in attributes.items()
            ]
        }
    )


def _patch_allocate():
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.elastic_ip_addresses import ElasticAddressBackend

    orig = ElasticAddressBackend.allocate_address

    def allocate_address(self, *args, **kwargs):
        limit = _QUOTAS.get(self.account_id)
        if limit is not None and len(self.addresses) >= limit:
            raise EC2ClientError("AddressLimitExceeded", "The maximum number of addresses has been reached.")
        return orig(self, *args, **kwargs)

    ElasticAddressBackend.allocate_address = allocate_address


def _default_quota(region, account, service, code):
    """The default of a quota as GetAWSDefaultServiceQuota answers it, or None when unknown."""
    from moto.servicequotas.resources.default_quotas.vpc import VPC_DEFAULT_QUOTAS

    if service == "vpc":
        for q in VPC_DEFAULT_QUOTAS:
            if q["QuotaCode"] == code:
                return dict(q)
        return None
    extra = _EXTRA_DEFAULTS.get((service, code))
    if extra is None:
        return None
    q = dict(extra)
    q.update({"ServiceCode": service, "QuotaCode": code,
              "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:{service}/{code}"})
    return q


def _service_quota(self, applied):
    from moto.servicequotas.exceptions import NoSuchResource

    params = json.loads(self.body or "{}")
    service, code = str(params.get("ServiceCode")), str(params.get("QuotaCode"))
    account = self.current_account
    if account in _QUOTAS_DENIED:
        from moto.core.exceptions import JsonRESTError

        raise JsonRESTError("AccessDeniedException", "You do not have sufficient access to perform this action.")
    q = _default_quota(self.region, account, service, code)
    if q is None:
        raise NoSuchResource
    if applied and (account, service, code) in _APPLIED:
        q["Value"] = float(_APPLIED[(account, service, code)])
    return json.dumps({"Quota": q})


def _truthy(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _quota_route(ext, request, full_url, headers):
    params = ext.fixture_params(request, full_url)
    method = getattr(request, "method", "GET")
    account = str(params.get("account", "")).strip()
    if not account:
        return 400, {"Content-Type": "text/plain"}, "account is required\n"
    if method == "POST":
        if _truthy(params.get("reset", "")):
            _QUOTAS.pop(account, None)
            _DENIED.discard(account)
            _QUOTAS_DENIED.discard(account)
            for key in [k for k in _APPLIED if k[0] == account]:
                del _APPLIED[key]
        if "deny_quotas" in params:
            if _truthy(params["deny_quotas"]):
                _QUOTAS_DENIED.add(account)
            else:
                _QUOTAS_DENIED.discard(account)
        if "service" in params or "code" in params:
            service, code = str(params.get("service", "")), str(params.get("code", ""))
            try:
                value = int(params["value"])
            except (KeyError, TypeError, ValueError):
                return 400, {"Content-Type": "text/plain"}, "service and code need an integer value\n"
            if not service or not code or value < 0:
                return 400, {"Content-Type": "text/plain"}, "service, code and a non-negative value are required\n"
            _APPLIED[(account, service, code)] = value
        elif "value" in params:
            try:
                value = int(params["value"])
            except (TypeError, ValueError):
                return 400, {"Content-Type": "text/plain"}, "value must be an integer\n"
            if value < 0:
                return 400, {"Content-Type": "text/plain"}, "value must not be negative\n"
            _QUOTAS[account] = value
        if "deny" in params:
            if _truthy(params["deny"]):
                _DENIED.add(account)
            else:
                _DENIED.discard(account)
    state = {"account": account, "vpc-max-elastic-ips": quota(account), "set": account in _QUOTAS,
             "deny": account in _DENIED, "deny_quotas": account in _QUOTAS_DENIED,
             "applied": {f"{k[1]}/{k[2]}": v for k, v in _APPLIED.items() if k[0] == account}}
    return 200, {"Content-Type": "application/json"}, json.dumps(state)


def install(ext):
    from moto.ec2.responses import EC2Response
    from moto.ec2.responses.account_attributes import AccountAttributes
    from moto.moto_api._internal import urls as api_urls

    AccountAttributes.describe_account_attributes = _describe_account_attributes
    EC2Response.describe_account_attributes = _describe_account_attributes
    _patch_allocate()
    from moto.servicequotas.responses import ServiceQuotasResponse

    ServiceQuotasResponse.get_service_quota = lambda self: _service_quota(self, applied=True)
    ServiceQuotasResponse.get_aws_default_service_quota = lambda self: _service_quota(self, applied=False)
    api_urls.url_paths["{0}/moto-api/dify-stack/quota$"] = lambda r, u, h: _quota_route(ext, r, u, h)
