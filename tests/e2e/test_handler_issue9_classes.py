"""Issue 9, classes 3, 4a, 4c, 5 and 7 through the hook handler, with real bytes in the real registry.

The CLI and the verifier API already have these regressions (tests/e2e/test_verifier_attacks.py,
tests/runtime/test_registry_urls.py, tests/runtime/test_registry_deadline.py); issue 9 asks for
each class through the hook handler too. The handler is built by the Lambda's composition root
(`tests/runtime/handler/hook_support.py`: ECS stubbed by botocore, every other part real), and the
images and signatures are pushed to Debian's docker-registry. Where the attack needs a hostile
registry, a reverse proxy in front of the real one (`tests/support/registry_proxy.py`) serves the
real bytes and turns hostile only where the attack says: it hands out a bearer token (the
credential to steal), redirects one blob, adds a `Link`, or trickles its headers.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from image_verifier.cosign.legacy import signature_tag
from image_verifier.errors import PolicyError
from image_verifier.handler import app
from image_verifier.oci import OCI_INDEX, OCI_MANIFEST, Descriptor
from image_verifier.registry.referrers import referrers_tag
from tests.runtime.handler.hook_support import LambdaContext, StubbedEcs, admission_handler, emf_metrics, hook_event
from tests.runtime.test_all_of_distinct import ARN, FakeKms, cosign_signed_image, notation_policy, push_notation_signature
from tests.support.cosign_material import KeyPair, cosign_policy, fetch_raw
from tests.support.fake_registry import FakeRegistry, Reply
from tests.support.images import PushedImage, push_image, unique_repository
from tests.support.notation_vectors import sign as notation_sign
from tests.support.pki import code_signing_chain
from tests.support.registry_proxy import RegistryProxy

pytestmark = pytest.mark.registry

TOKEN = "registry-proxy-secret-token"  # the credential the proxy hands out; it must reach no other host


@pytest.fixture
def proxy(registry) -> Iterator[RegistryProxy]:
    """The real registry behind a proxy that wants a bearer token."""
    with RegistryProxy(registry.host, bearer_token=TOKEN) as running:
        yield running


def _container(host: str, image: PushedImage, *, with_digest: bool = True) -> tuple[str, str, str | None]:
    """The ECS container entry of `image` as pulled from `host` (the proxy, or the registry itself)."""
    return ("app", f"{host}/{image.repository}:{image.ref.tag}", image.digest if with_digest else None)


def _decide(policy: dict[str, Any], container: tuple[str, str, str | None], *, insecure: list[str],
            clients: dict[str, Any] | None = None, context: LambdaContext | None = None,
            event: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """One hook invocation for a one-container revision: (response, the audit record)."""
    ecs = StubbedEcs()
    ecs.revision([container])
    admission = admission_handler(policy, ecs, insecure_registries=insecure, clients=clients)
    response = admission.handle(event or hook_event(), context)
    [record] = admission.audit_records()
    return response, record


def _signature_payload_digest(registry, image: PushedImage) -> str:
    """The digest of the cosign payload blob that the image's `.sig` manifest lists first."""
    raw = fetch_raw(registry, image.repository, f"manifests/{signature_tag(image.digest)}", OCI_MANIFEST)
    return json.loads(raw)["layers"][0]["digest"]


def _credential_seen_by(server: FakeRegistry) -> bool:
    return any(TOKEN in value for r in server.requests for value in (r.path, *r.headers.values()))


# -- class 3: the registry credential never reaches another host ------------------------------------------


@pytest.mark.parametrize(("location", "reason"), [
    ("http://{other}\\@{proxy}/v2/{repo}/blobs/{blob}", "backslash"),  # urllib.parse: PROXY; urllib3: OTHER
    ("http://{proxy}@{other}/v2/{repo}/blobs/{blob}", "user info"),  # a reader that stops at '@' sees PROXY
], ids=["backslash", "user-info"])
def test_rejects_revision_without_sending_the_credential_elsewhere_when_a_redirect_hides_another_host_class3(
        registry, registry_client, key, proxy, fake_registry, location, reason):
    # Given a signed image whose signature payload the registry (behind a bearer token) redirects to a URL that
    # names another host (a recorder) in a way two URL parsers read differently; both are plain-http loopback
    # servers named insecure, so the scheme is not what stops the attack
    image = cosign_signed_image(registry, registry_client, key)
    blob = _signature_payload_digest(registry, image)
    hostile = location.format(other=fake_registry.host, proxy=proxy.host, repo=image.repository, blob=blob)
    proxy.route("GET", f"/v2/{image.repository}/blobs/{blob}", Reply(status=307, headers={"Location": hostile}))
    policy = cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{proxy.host}/**")
    # When ECS calls the hook for a revision that runs it from the proxied registry
    response, record = _decide(policy, _container(proxy.host, image), insecure=[proxy.host, fake_registry.host])
    # Then the revision is refused naming the hostile URL, the registry did get the token (the credential was in
    # play), and the other host received nothing at all
    assert response == {"hookStatus": "FAILED"}
    [entry] = record["images"]
    assert entry["outcome"] == "rejected" and reason in " ".join(entry["reasons"]), entry
    assert any(r.header("Authorization") == f"Bearer {TOKEN}" for r in proxy.requests)
    assert any(r.path == f"/v2/{image.repository}/blobs/{blob}" for r in proxy.requests)  # the redirect was served
    assert fake_registry.requests == [] and not _credential_seen_by(fake_registry)


def test_admits_revision_and_keeps_the_credential_home_when_a_plain_redirect_leaves_for_another_host_class3(
        registry, registry_client, key, proxy, fake_registry):
    # Given the same setup, but the payload is redirected plainly to another host (as ECR redirects to S3),
    # which serves the real bytes
    image = cosign_signed_image(registry, registry_client, key)
    blob = _signature_payload_digest(registry, image)
    fake_registry.route("GET", f"/s3/{blob}", Reply(body=fetch_raw(registry, image.repository, f"blobs/{blob}", "*/*")))
    proxy.route("GET", f"/v2/{image.repository}/blobs/{blob}",
                Reply(status=307, headers={"Location": f"http://{fake_registry.host}/s3/{blob}"}))
    policy = cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{proxy.host}/**")
    # When / Then the redirect is followed (the attack tests above are refused for their URL, not for redirecting),
    # and the other host gets the request without the credential
    response, record = _decide(policy, _container(proxy.host, image), insecure=[proxy.host, fake_registry.host])
    assert response == {"hookStatus": "SUCCEEDED"}, record
    assert [r.path for r in fake_registry.requests] == [f"/s3/{blob}"]
    assert fake_registry.requests[0].header("Authorization") is None and not _credential_seen_by(fake_registry)


@pytest.mark.parametrize(("link", "reason"), [
    ("http://{other}\\@{proxy}/v2/{repo}/referrers/{digest}?page=2", "contains a backslash"),
    ("http://{proxy}@{other}/v2/{repo}/referrers/{digest}?page=2", "not plain host[:port] (user info"),
], ids=["backslash", "user-info"])
def test_rejects_revision_without_sending_the_credential_elsewhere_when_a_referrers_link_hides_another_host_class3(
        registry, proxy, fake_registry, link, reason):
    # Given a Notation-signed image (real JWS, listed in the referrers tag schema), and a registry whose referrers
    # API lists that signature with a next-page Link that names another host ambiguously
    chain = code_signing_chain("p256", role_prefix="hook-link-")
    image = push_image(registry, unique_repository("link"), "v1")
    push_notation_signature(registry, image, chain)
    listing = fetch_raw(registry, image.repository, f"manifests/{referrers_tag(image.digest)}", OCI_INDEX)
    hostile = link.format(other=fake_registry.host, proxy=proxy.host, repo=image.repository, digest=image.digest)
    proxy.route("GET", f"/v2/{image.repository}/referrers/{image.digest}", Reply(
        body=listing, headers={"Content-Type": OCI_INDEX, "Link": f'<{hostile}>; rel="next"'}))
    policy = notation_policy(proxy.host, chain, ["corp"])
    # When ECS calls the hook
    response, record = _decide(policy, _container(proxy.host, image), insecure=[proxy.host, fake_registry.host])
    # Then the revision is refused with a reason, and the other host received nothing
    assert response == {"hookStatus": "FAILED"}, record
    [entry] = record["images"]
    assert entry["outcome"] == "rejected" and "next-page Link" in entry["reasons"][0], entry
    assert reason in entry["reasons"][0]
    assert any(r.path.startswith(f"/v2/{image.repository}/referrers/") for r in proxy.requests)
    assert any(r.header("Authorization") == f"Bearer {TOKEN}" for r in proxy.requests)
    assert fake_registry.requests == [] and not _credential_seen_by(fake_registry)


# -- class 4a: an image no rule names is refused before any network call ------------------------------------


@pytest.mark.parametrize("ecs_gives_digest", [True, False])
def test_rejects_revision_without_any_registry_request_when_no_rule_names_the_image_and_unavailable_mode_is_audit_class4a(
        registry, registry_client, key, ecs_gives_digest):
    # Given a real, even signed, image served by a registry that counts every connection, and a policy that audits
    # outages but whose only rule names another registry
    image = cosign_signed_image(registry, registry_client, key)
    policy = cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images="elsewhere.example.com/**")
    policy["unavailableMode"] = "audit"
    with RegistryProxy(registry.host) as counting:
        # When ECS calls the hook (with the digest, or only the tag at PRE_SCALE_UP)
        response, record = _decide(policy, _container(counting.host, image, with_digest=ecs_gives_digest),
                                   insecure=[counting.host])
        # Then the revision is refused, not admitted as "unavailable", and the registry was never contacted
        assert (counting.connections, counting.requests) == (0, [])
    assert response == {"hookStatus": "FAILED"}
    [entry] = record["images"]
    assert entry["outcome"] == "rejected" and "add a rule (or an exemption)" in entry["reasons"][0], entry
    assert record["admittedInAuditMode"] is False


def test_rejects_revision_at_the_first_attempt_when_no_rule_names_an_unreachable_registry_class4a(key):
    # Given a registry that is down, which no rule names, under unavailableMode audit
    policy = cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images="elsewhere.example.com/**")
    policy["unavailableMode"] = "audit"
    # When / Then the hook neither admits (audit) nor defers (IN_PROGRESS): it refuses at once
    response, record = _decide(policy, ("app", "127.0.0.1:9/team/app:v1", None), insecure=["127.0.0.1:9"])
    assert response == {"hookStatus": "FAILED"}
    assert record["images"][0]["outcome"] == "rejected"
    assert "no rule matches 127.0.0.1:9/team/app" in record["images"][0]["reasons"][0]


# -- class 4c: a signer below level strict admits only with warnings, and level audit needs failureMode audit ---


def _notation_at(registry_host: str, chain: Any, level: str, **extra: Any) -> dict[str, Any]:
    document = notation_policy(registry_host, chain, ["corp"], **extra)
    document["trustedSigners"][0]["notationX509"]["verificationLevel"] = level
    return document


def push_expired_notation_signature(registry, image: PushedImage, chain: Any) -> None:
    """A real Notation signature of `image` whose signed expiry passed yesterday."""
    expired = datetime.now(timezone.utc) - timedelta(days=1)
    subject = Descriptor(media_type=image.media_type, digest=image.digest, size=image.size)
    push_notation_signature(registry, image, chain,
                            vector=notation_sign(subject, chain, signing_time=expired - timedelta(days=1), expiry=expired))


def test_admits_with_warnings_in_the_audit_record_when_a_permissive_signer_accepts_an_expired_signature_class4c(
        registry, capsys):
    # Given an image whose only Notation signature expired yesterday, and a blocking policy whose signer is permissive
    chain = code_signing_chain("p256", role_prefix="hook-permissive-")
    image = push_image(registry, unique_repository("permissive"), "v1")
    push_expired_notation_signature(registry, image, chain)
    # When ECS calls the hook
    response, record = _decide(_notation_at(registry.host, chain, "permissive"), _container(registry.host, image),
                               insecure=[registry.host])
    # Then the level admits it, but the audit record and the metrics say what was not enforced
    assert response == {"hookStatus": "SUCCEEDED"}, record
    [entry] = record["images"]
    assert entry["outcome"] == "verified"
    assert len(entry["warnings"]) == 1 and "expiry: the signature expired at" in entry["warnings"][0]
    assert entry["signers"][0]["warnings"] == entry["warnings"]
    assert record["admittedWithWarnings"] == 1
    assert emf_metrics(capsys.readouterr().out)["AdmittedWithWarnings"] == 1


def test_keeps_the_warnings_when_a_warm_function_reuses_a_verdict_admitted_with_warnings_class4c(registry):
    # Given a permissive signer and an expired signature, and a warm function that has admitted the image once
    chain = code_signing_chain("p256", role_prefix="hook-permissive-cache-")
    image = push_image(registry, unique_repository("permissive-cache"), "v1")
    push_expired_notation_signature(registry, image, chain)
    ecs = StubbedEcs()
    ecs.revision([_container(registry.host, image)])
    ecs.revision([_container(registry.host, image)], describe_task_definition=False)  # the same task definition
    admission = admission_handler(_notation_at(registry.host, chain, "permissive"), ecs, insecure_registries=[registry.host])
    # When ECS calls the hook again and the verdict comes from the cache
    assert [admission.handle(hook_event())["hookStatus"] for _ in range(2)] == ["SUCCEEDED", "SUCCEEDED"]
    # Then the cached admission still says what was not enforced: a cache must not launder the warnings away
    first, second = admission.audit_records()
    assert (first["images"][0]["cached"], second["images"][0]["cached"]) == (False, True)
    assert second["images"][0]["warnings"] == first["images"][0]["warnings"] != []
    assert second["admittedWithWarnings"] == 1


def test_admits_with_warnings_in_the_audit_record_when_an_audit_level_signer_accepts_an_untrusted_root_class4c(
        registry):
    # Given an image signed under a PKI the policy does not trust, and a signer at level audit (failureMode audit)
    trusted = code_signing_chain("p256", role_prefix="hook-audit-trusted-")
    stranger = code_signing_chain("p256", role_prefix="hook-audit-stranger-")
    image = push_image(registry, unique_repository("audit-level"), "v1")
    push_notation_signature(registry, image, stranger)
    policy = _notation_at(registry.host, trusted, "audit", failureMode="audit")
    # When / Then admitted, with the authenticity failure in the record
    response, record = _decide(policy, _container(registry.host, image), insecure=[registry.host])
    assert response == {"hookStatus": "SUCCEEDED"}, record
    [entry] = record["images"]
    assert entry["outcome"] == "verified"
    assert entry["warnings"][0].startswith("signer 'corp': authenticity: certificate chain does not end")
    assert record["admittedWithWarnings"] == 1


def test_rejects_every_deployment_when_a_signer_is_at_audit_level_and_failure_mode_blocks_class4c(
        registry, monkeypatch, capsys):
    # Given a blocking policy (failureMode by default) whose signer is at level audit
    chain = code_signing_chain("p256", role_prefix="hook-audit-block-")
    image = push_image(registry, unique_repository("audit-block"), "v1")
    push_notation_signature(registry, image, chain)
    policy = _notation_at(registry.host, chain, "audit")
    # When the function is built from it, Then it refuses to start, naming the field and the fix
    with pytest.raises(PolicyError, match="set failureMode to 'audit'"):
        admission_handler(policy, insecure_registries=[registry.host])
    # And the Lambda entry point answers FAILED to ECS (even for a validly signed image), saying why in its log
    monkeypatch.setenv("ADMISSION_POLICY", json.dumps(policy))
    monkeypatch.setenv("ADMISSION_INSECURE_REGISTRIES", registry.host)
    monkeypatch.setattr(app, "_handler", None)
    assert app.lambda_handler(hook_event(), LambdaContext()) == {"hookStatus": "FAILED"}
    assert app._handler is None
    [line] = [json.loads(out) for out in capsys.readouterr().out.splitlines() if "misconfigured" in out]
    assert "trustedSigners[0].notationX509.verificationLevel" in line["error"]
    assert "set failureMode to 'audit'" in line["error"]


# -- class 5: one signature, one key, counts once for allOf -----------------------------------------------------


def test_rejects_revision_when_an_all_of_rule_names_one_key_by_its_kms_arn_and_by_its_pem_class5(
        registry, registry_client):
    # Given one key, named twice (KMS ARN and PEM) by an allOf rule, and an image it signed twice
    signing_key = KeyPair.generate()
    image = cosign_signed_image(registry, registry_client, signing_key, signing_key)
    policy = cosign_policy({"release": {"kmsKeyArn": ARN}, "security": {"publicKeyPem": signing_key.public_pem}},
                           images=f"{registry.host}/**", all_of=["release", "security"])
    kms = FakeKms({ARN: signing_key})
    # When ECS calls the hook (KMS answers GetPublicKey for the ARN)
    response, record = _decide(policy, _container(registry.host, image), insecure=[registry.host],
                               clients={"kms": kms})
    # Then one key is one party: refused, saying so
    assert response == {"hookStatus": "FAILED"}, record
    [entry] = record["images"]
    assert entry["outcome"] == "rejected" and "the same public key" in " ".join(entry["reasons"]), entry
    assert kms.calls == [ARN]  # the ARN was resolved to its key material, which is what was compared


def test_rejects_revision_when_an_all_of_rule_names_two_notation_signers_on_one_root_and_one_signature_class5(registry):
    # Given two notationX509 signers on one root and identity, under allOf, and one Notation signature
    chain = code_signing_chain("p256", role_prefix="hook-allof-")
    image = push_image(registry, unique_repository("allof"), "v1")
    push_notation_signature(registry, image, chain)
    # When / Then the one signature counts once
    response, record = _decide(notation_policy(registry.host, chain, ["team-a", "team-b"]),
                               _container(registry.host, image), insecure=[registry.host])
    assert response == {"hookStatus": "FAILED"}, record
    assert "the same signature" in " ".join(record["images"][0]["reasons"])


def test_admits_revision_when_two_different_keys_satisfy_an_all_of_rule_class5(registry, registry_client):
    # The control: the same rule with two genuinely different keys is admitted through the hook
    first, second = KeyPair.generate(), KeyPair.generate()
    image = cosign_signed_image(registry, registry_client, first, second)
    policy = cosign_policy({"release": {"kmsKeyArn": ARN}, "security": {"publicKeyPem": second.public_pem}},
                           images=f"{registry.host}/**", all_of=["release", "security"])
    response, record = _decide(policy, _container(registry.host, image), insecure=[registry.host],
                               clients={"kms": FakeKms({ARN: first})})
    assert response == {"hookStatus": "SUCCEEDED"}, record
    assert [s["signer"] for s in record["images"][0]["signers"]] == ["release", "security"]


# -- class 7: a registry that trickles its headers cannot hold the answer past the deadline -----------------------

TRICKLE_INTERVAL = 0.2  # seconds between header bytes: far below any socket read timeout
REMAINING_MS = 8_000  # the invocation's time left; minus the default 5 s margin, the decision's deadline is 3 s
DECISION_SECONDS = 3.0
SLACK = 1.0  # the brief: the answer comes within the deadline plus about a second


@pytest.mark.parametrize(("attempt", "status"), [(1, "IN_PROGRESS"), (3, "FAILED")])
def test_rejects_revision_by_the_deadline_when_the_registry_trickles_its_headers_class7(
        registry, registry_client, key, attempt, status):
    # Given a validly signed image served by a registry that sends every status line and header one byte at a time
    image = cosign_signed_image(registry, registry_client, key)
    with RegistryProxy(registry.host, trickle_interval=TRICKLE_INTERVAL) as trickling:
        policy = cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{trickling.host}/**")
        event = hook_event(hook_details={"imageAdmission": {"attempt": attempt}} if attempt > 1 else None)
        # When ECS calls the hook (block mode) with 8 s left in the invocation
        started = time.monotonic()
        response, record = _decide(policy, _container(trickling.host, image), insecure=[trickling.host],
                                   context=LambdaContext(remaining_ms=REMAINING_MS), event=event)
        elapsed = time.monotonic() - started
        # Then the image is unavailable, never admitted: the hook defers while attempts remain (the documented
        # answer) and refuses at the last one, within the deadline plus a second; and no reader is left behind
        give_up = time.monotonic() + SLACK
        while trickling.trickles_active and time.monotonic() < give_up:
            time.sleep(0.05)
        assert trickling.trickles_active == 0 and trickling.trickles_cut >= 1
    assert response["hookStatus"] == status, record
    assert elapsed < DECISION_SECONDS + SLACK, elapsed
    [entry] = record["images"]
    assert entry["outcome"] == "unavailable", entry
    assert record["attempt"] == attempt
