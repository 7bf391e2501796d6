"""Registry authentication: bearer challenges and token caching, Basic, ECR tokens (moto)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import boto3
import pytest

from botocore.exceptions import ClientError
from moto import mock_aws

from image_verifier.aws_errors import AwsRefusedError
from image_verifier.deadline import Deadline
from image_verifier.errors import AwsUnavailableError, RegistryRefusedError, RegistryUnavailableError
from image_verifier.oci import OCI_MANIFEST
from image_verifier.reference import ImageReference
from image_verifier.registry import BasicCredentials, EcrCredentials, RegistryClient, StaticCredentials, parse_ecr_host
from image_verifier.registry.auth import ECR_TOKEN_REFRESH_MARGIN, EcrHost, parse_challenge
from tests.support.fake_registry import FakeRegistry, Reply
from tests.support.images import build_image

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
MOTO_EXPIRY = datetime(2015, 1, 1, tzinfo=timezone.utc).timestamp()  # moto's fixed expiresAt


@pytest.fixture
def aws_credentials(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)


def serve_image(fake: FakeRegistry, repo: str = "app") -> ImageReference:
    _, raw = build_image()
    fake.add_manifest(repo, raw, OCI_MANIFEST, tags=["v1"])
    return ImageReference.parse(f"{fake.host}/{repo}:v1")


def test_fetches_a_bearer_token_once_when_a_registry_challenges_and_the_token_is_cached(fake_registry):
    # Given
    fake_registry.require_bearer(token="t0k", expires_in=300)
    ref = serve_image(fake_registry)
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When
    first = client.bound(Deadline.after(10))
    first.resolve(ref)
    second = client.bound(Deadline.after(10))
    second.resolve(ref)
    # Then: 401 + retry, then one request with the cached token and no token request
    assert (first.request_count, first.token_request_count) == (2, 1)
    assert (second.request_count, second.token_request_count) == (1, 0)
    assert client.token_request_count == 1
    token_request = fake_registry.requests_to("/token")[0]
    assert token_request.path == "/token?service=fake-registry&scope=repository%3Aapp%3Apull"
    assert fake_registry.requests[-1].header("Authorization") == "Bearer t0k"


def test_asks_for_a_token_scoped_to_the_repository_without_a_second_challenge_when_the_registry_is_known(fake_registry):
    # Given
    fake_registry.require_bearer()
    app, other = serve_image(fake_registry, "app"), serve_image(fake_registry, "other")
    client = RegistryClient(insecure_registries={fake_registry.host})
    client.bound(Deadline.after(10)).resolve(app)
    # When
    session = client.bound(Deadline.after(10))
    session.resolve(other)
    # Then
    assert (session.request_count, session.token_request_count) == (1, 1)
    assert fake_registry.requests_to("/token")[-1].path.endswith("scope=repository%3Aother%3Apull")


def test_fetches_a_new_token_when_the_cached_one_expires(fake_registry):
    # Given: tokens live 1s, less than the refresh margin
    fake_registry.require_bearer(expires_in=1)
    ref = serve_image(fake_registry)
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When
    client.bound(Deadline.after(10)).resolve(ref)
    client.bound(Deadline.after(10)).resolve(ref)
    # Then
    assert client.token_request_count == 2


def test_fetches_a_new_token_once_when_the_registry_refuses_the_cached_one(fake_registry):
    # Given
    fake_registry.require_bearer(token="old")
    ref = serve_image(fake_registry)
    client = RegistryClient(insecure_registries={fake_registry.host})
    client.bound(Deadline.after(10)).resolve(ref)
    fake_registry.require_bearer(token="new")  # revoked
    # When
    session = client.bound(Deadline.after(10))
    session.resolve(ref)
    # Then
    assert (session.request_count, session.token_request_count) == (2, 1)


def test_rejects_with_unavailable_when_the_token_service_refuses(fake_registry):
    # Given
    fake_registry.require_bearer()
    fake_registry.route("GET", "/token", Reply(status=401, body=b"no"))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(RegistryUnavailableError, match="gave no token for repository:app:pull.*configure credentials"):
        client.bound(Deadline.after(10)).resolve(serve_image(fake_registry))


def test_rejects_as_refused_when_basic_auth_is_required_and_no_credentials_exist(fake_registry):
    # Given a registry that answers 401: an answer, not an outage (audit unavailableMode must not admit it)
    fake_registry.require_basic(BasicCredentials(username="u", password="p").header)
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(RegistryRefusedError, match="no valid credential for .*configure credentials"):
        client.bound(Deadline.after(10)).resolve(serve_image(fake_registry))
    assert len(fake_registry.requests) == 1


def test_answers_a_basic_challenge_when_credentials_exist_and_then_sends_them_up_front(fake_registry):
    # Given
    credentials = BasicCredentials(username="u", password="p")
    fake_registry.require_basic(credentials.header)
    ref = serve_image(fake_registry)
    client = RegistryClient(insecure_registries={fake_registry.host},
                            credentials=[StaticCredentials(by_host={fake_registry.host: credentials})])
    # When
    first, second = client.bound(Deadline.after(10)), client.bound(Deadline.after(10))
    first.resolve(ref)
    second.resolve(ref)
    # Then
    assert (first.request_count, second.request_count) == (2, 1)


def test_sends_basic_auth_without_a_challenge_when_credentials_say_so(fake_registry):
    # Given: like ECR tokens, which always go up front
    credentials = BasicCredentials(username="AWS", password="token", send_up_front=True)
    fake_registry.require_basic(credentials.header)
    client = RegistryClient(insecure_registries={fake_registry.host},
                            credentials=[StaticCredentials(by_host={fake_registry.host: credentials})])
    session = client.bound(Deadline.after(10))
    # When
    session.resolve(serve_image(fake_registry))
    # Then
    assert session.request_count == 1


def test_rejects_as_refused_naming_the_access_when_the_registry_answers_403(fake_registry):
    # Given
    fake_registry.route("GET", "/v2/app/manifests/v1", Reply(status=403, body=b"denied"))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(RegistryRefusedError, match="lacks pull access to app"):
        client.bound(Deadline.after(10)).resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))


@pytest.mark.parametrize(("host", "expected"), [
    (ECR_HOST, EcrHost(account="123456789012", region="eu-west-1", fips=False)),
    ("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", EcrHost(account="123456789012", region="us-east-1", fips=True)),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", EcrHost(account="123456789012", region="cn-north-1", fips=False)),
    ("123456789012.dkr-ecr.eu-west-1.on.aws", EcrHost(account="123456789012", region="eu-west-1", fips=False)),
    ("public.ecr.aws", None),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example", None),
    ("12345.dkr.ecr.eu-west-1.amazonaws.com", None),
])
def test_recognises_ecr_hosts_when_parsing_a_registry_host(host, expected):
    # Given / When / Then
    assert parse_ecr_host(host) == expected


def test_caches_the_ecr_token_until_shortly_before_it_expires_when_using_moto(aws_credentials):
    # Given: a clock one hour before moto's fixed expiresAt
    now = [MOTO_EXPIRY - 3600]
    with mock_aws():
        ecr = EcrCredentials(lambda region: boto3.client("ecr", region_name=region), clock=lambda: now[0])
        # When
        first = ecr.credentials_for(ECR_HOST, Deadline.after(10))
        second = ecr.credentials_for(ECR_HOST, Deadline.after(10))
        calls_while_valid = ecr.call_count
        now[0] = MOTO_EXPIRY - ECR_TOKEN_REFRESH_MARGIN + 1
        ecr.credentials_for(ECR_HOST, Deadline.after(10))
    # Then
    assert first == second
    assert (first.username, first.password, first.send_up_front) == ("AWS", "123456789012-auth-token", True)
    assert calls_while_valid == 1
    assert ecr.call_count == 2
    assert ecr.credentials_for("ghcr.io", Deadline.after(10)) is None


def test_fetches_one_ecr_token_when_eight_threads_ask_at_once(aws_credentials):
    # Given
    with mock_aws():
        ecr = EcrCredentials(lambda region: boto3.client("ecr", region_name=region), clock=lambda: MOTO_EXPIRY - 3600)
        # When
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _: ecr.credentials_for(ECR_HOST, Deadline.after(10)), range(20)))
    # Then
    assert len(set(results)) == 1
    assert ecr.call_count == 1


class _FailingEcr:
    def __init__(self, code: str) -> None:
        self.code = code

    def get_authorization_token(self) -> dict:
        raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "GetAuthorizationToken")


def test_rejects_as_refused_naming_the_permission_when_ecr_denies_the_token():
    # Given ECR answering AccessDenied: an answer, which retrying will not change, so not `unavailable`
    # (unavailableMode: audit must not admit what AWS refused)
    ecr = EcrCredentials(lambda region: _FailingEcr("AccessDeniedException"))
    # When / Then
    with pytest.raises(AwsRefusedError, match="grant the verifier's role ecr:GetAuthorizationToken"):
        ecr.credentials_for(ECR_HOST, Deadline.after(10))


def test_rejects_with_aws_unavailable_when_ecr_throttles():
    # Given
    ecr = EcrCredentials(lambda region: _FailingEcr("ThrottlingException"))
    # When / Then
    with pytest.raises(AwsUnavailableError, match="ThrottlingException"):
        ecr.credentials_for(ECR_HOST, Deadline.after(10))


def test_parses_a_bearer_challenge_when_the_scope_holds_commas():
    # Given
    header = 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    # When
    challenge = parse_challenge(header)
    # Then
    assert (challenge.scheme, challenge.realm, challenge.service, challenge.scope) == (
        "bearer", "https://auth.example/token", "registry.example", "repository:a/b:pull,push")
