"""The gate judges what the runtime will run: real indexes in the real registry, the CLI, the
verifier API, and Debian's containerd pulling what the verifier admitted.

Issue 9, class 1 (platform selection) and class 2 (JSON keys Go folds). Every attack here is built
with real bytes: two real images, one signed with our own `sign`, listed in a pushed index.
"""

from __future__ import annotations

import json
import random
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from image_verifier.composition import build_verifier
from image_verifier.deadline import Deadline
from image_verifier.oci import OCI_INDEX
from image_verifier.platform import Platform
from image_verifier.policy import Policy
from image_verifier.registry import RegistryClient
from image_verifier.verdict import Outcome, Verdict
from image_verifier.verifier import ImageRequest
from tests.runtime.handler.hook_support import StubbedEcs, admission_handler, hook_event
from tests.support.containerd import Containerd, chain_id, start_containerd, stop_containerd, unavailable_reason
from tests.support.cosign_material import KeyPair, cosign_policy, fetch_raw
from tests.support.images import PushedImage, canonical_json, push_image, push_manifest, sha256_digest, unique_repository
from tests.support.json_mutations import SPELLINGS, at, object_paths, respell, with_member

from .cli_helpers import sign, verify, write_policy

pytestmark = pytest.mark.registry
AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64"}
GENERATED_INDEXES = 90  # about 10 s with the pulls on 2 cores; about a quarter are admitted
SEED = 9  # issue 9; fixed so that a failure names an index that can be rebuilt


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """Debian's containerd as root with its own root, state and socket; stopped by PID at the end."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"containerd cannot run here: {reason}")
    workdir = tmp_path_factory.mktemp("ctrd")
    daemon, process = start_containerd(workdir)
    try:
        yield daemon
    finally:
        stop_containerd(process, workdir)


def _policy_document(registry_host: str, key: KeyPair) -> dict[str, Any]:
    return cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry_host}/**")


def _index(registry, repo: str, entries: list[dict[str, Any]], tag: str = "multi", **annotations: str) -> PushedImage:
    """Push an index; `annotations` keep two indexes with the same entries apart (same bytes, same digest)."""
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    if annotations:
        document["annotations"] = annotations
    return push_manifest(registry, repo, tag, canonical_json(document), OCI_INDEX)


def _raw_index(registry, repo: str, text: str) -> PushedImage:
    """An index written by hand: json.dumps cannot write two keys that Go folds into one."""
    return push_manifest(registry, repo, sha256_digest(text.encode()), text.encode(), OCI_INDEX)


def _entry(image: PushedImage, platform: dict[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"mediaType": image.media_type, "digest": image.digest, "size": image.size}
    if platform is not None:
        entry["platform"] = platform
    return entry


def _verify_api(registry_client, key: KeyPair, registry_host: str, image: str, platform: str) -> Verdict:
    policy = Policy.from_json(_policy_document(registry_host, key))
    decision = build_verifier(policy, registry=registry_client).decide(
        [ImageRequest(image=image, platform=Platform.parse(platform))], deadline=Deadline.after(30))
    return decision.verdicts[0]


@pytest.fixture(scope="module")
def images(registry, tmp_path_factory, key) -> dict[str, PushedImage]:
    """Signed and unsigned images for amd64 and arm64 in one repository (signed with `sign`)."""
    key_file = tmp_path_factory.mktemp("key") / "cosign.key"
    key_file.write_bytes(key.private_pem)
    repo = unique_repository("agreement")
    pushed = {
        "signed-amd64": push_image(registry, repo, None, layer_bytes=b"signed amd64", platform="linux/amd64"),
        "unsigned-amd64": push_image(registry, repo, None, layer_bytes=b"unsigned amd64", platform="linux/amd64"),
        "signed-arm64": push_image(registry, repo, None, layer_bytes=b"signed arm64", platform="linux/arm64"),
        "unsigned-arm64": push_image(registry, repo, None, layer_bytes=b"unsigned arm64", platform="linux/arm64"),
    }
    for name in ("signed-amd64", "signed-arm64"):
        assert sign(registry.host, key_file, str(pushed[name].ref)).code == 0
    return pushed


def _chain_id_of(registry, image: PushedImage) -> str:
    """The chain id of a manifest's rootfs, read from the registry (not through the verifier)."""
    manifest = json.loads(fetch_raw(registry, image.repository, f"manifests/{image.digest}", image.media_type))
    config = json.loads(fetch_raw(registry, image.repository, f"blobs/{manifest['config']['digest']}", "*/*"))
    return chain_id(config["rootfs"]["diff_ids"])


# ---- class 1: platform spellings, through the CLI and the API ----------------------------------

@pytest.mark.parametrize(("arch", "spelling", "task"), [
    ("amd64", {"os": "linux", "architecture": "x86_64"}, "linux/amd64"),
    ("amd64", {"os": "linux", "architecture": "AMD64"}, "linux/amd64"),
    ("amd64", {"os": "Linux", "architecture": "amd64"}, "LINUX/X86_64"),
    ("amd64", {"os": "", "architecture": "amd64"}, "linux/amd64"),
    ("amd64", {"architecture": "amd64"}, "LINUX/X86_64"),
    ("amd64", None, "linux/amd64"),
    ("arm64", {"os": "linux", "architecture": "aarch64"}, "linux/arm64"),
    ("arm64", {"os": "linux", "architecture": "arm64", "variant": "v8"}, "LINUX/ARM64"),
])
def test_rejects_index_when_an_unsigned_first_entry_is_spelled_otherwise_class1(
        registry, registry_client, tmp_path, key, images, arch, spelling, task):
    # Given an unsigned index: the unsigned image first under another spelling, the signed one second
    unsigned, signed = images[f"unsigned-{arch}"], images[f"signed-{arch}"]
    index = _index(registry, signed.repository,
                   [_entry(unsigned, spelling), _entry(signed, AMD64 if arch == "amd64" else ARM64)])
    # When it is verified for the task's platform through the CLI and through the verifier API
    result = verify(registry.host, write_policy(tmp_path, _policy_document(registry.host, key)), str(index.tag_ref),
                    extra=("--platform", task))
    verdict = _verify_api(registry_client, key, registry.host, str(index.ref), task)
    # Then both reject it, naming the unsigned entry the runtime could run
    assert result.code == 1, result
    assert result.verdicts[0]["outcome"] == "rejected"
    assert unsigned.digest in result.verdicts[0]["reasons"][0]
    assert verdict.outcome is Outcome.REJECTED
    assert any(unsigned.digest in r and "several different manifests" in r for r in verdict.reasons), verdict


def test_admits_index_when_the_signed_manifest_is_all_the_runtime_could_pick(registry, registry_client, key, images):
    # Given an unsigned index whose only amd64-compatible entry is the signed manifest
    signed, other = images["signed-amd64"], images["unsigned-arm64"]
    index = _index(registry, signed.repository, [_entry(other, ARM64), _entry(signed, {"os": "Linux",
                                                                                        "architecture": "x86_64"})])
    # When / Then the platform manifest's signature decides, and the verdict names it
    verdict = _verify_api(registry_client, key, registry.host, str(index.ref), "LINUX/X86_64")
    assert verdict.outcome is Outcome.VERIFIED, verdict
    assert verdict.platform_digest == signed.digest
    assert verdict.signers[0].verified_digest == signed.digest


def test_admits_index_when_the_index_itself_is_signed_whatever_its_entries(registry, registry_client, key, images,
                                                                           tmp_path):
    # Given an ambiguous index that is signed at the index (the index digest pins every entry)
    unsigned, signed = images["unsigned-amd64"], images["signed-amd64"]
    index = _index(registry, signed.repository, [_entry(unsigned, {"os": "linux", "architecture": "x86_64"}),
                                                 _entry(signed, AMD64)], tag="signed-index", purpose="signed")
    key_file = tmp_path / "cosign.key"
    key_file.write_bytes(key.private_pem)
    assert sign(registry.host, key_file, str(index.ref)).code == 0
    # When / Then it is admitted on the index signature, and the runtime's pick is reported
    verdict = _verify_api(registry_client, key, registry.host, str(index.ref), "linux/amd64")
    assert verdict.outcome is Outcome.VERIFIED, verdict
    assert verdict.signers[0].verified_digest == index.digest
    assert verdict.platform_digest == unsigned.digest


# ---- class 2: keys Go folds, through the CLI and the API ---------------------------------------

def _folded_indexes(signed: PushedImage, unsigned: PushedImage) -> dict[str, str]:
    s, u = json.dumps(_entry(signed, AMD64)), json.dumps(_entry(unsigned, AMD64))
    head = f'{{"schemaVersion":2,"mediaType":"{OCI_INDEX}"'
    return {
        "Manifests": f'{head},"manifests":[{s}],"Manifests":[{u}]}}',
        "Digest": (f'{head},"manifests":[{{"mediaType":"{signed.media_type}","digest":"{signed.digest}",'
                   f'"Digest":"{unsigned.digest}","size":{signed.size},"platform":{{"os":"linux","architecture":"amd64"}}}}]}}'),
        "OS": (f'{head},"manifests":[{{"mediaType":"{unsigned.media_type}","digest":"{unsigned.digest}",'
               f'"size":{unsigned.size},"platform":{{"os":"windows","OS":"linux","architecture":"amd64"}}}},{s}]}}'),
    }


@pytest.mark.parametrize("folded", ["Manifests", "Digest", "OS"])
def test_rejects_index_when_a_key_is_folded_class2(registry, registry_client, tmp_path, key, images, folded):
    # Given an index that Go reads as pointing at the unsigned image, and we might read as the signed one
    signed, unsigned = images["signed-amd64"], images["unsigned-amd64"]
    index = _raw_index(registry, signed.repository, _folded_indexes(signed, unsigned)[folded])
    # When it is verified through the CLI and the API
    result = verify(registry.host, write_policy(tmp_path, _policy_document(registry.host, key)), str(index.ref),
                    extra=("--platform", "linux/amd64"))
    verdict = _verify_api(registry_client, key, registry.host, str(index.ref), "linux/amd64")
    # Then both refuse it and name the folded key
    assert result.code == 1, result
    assert folded in result.verdicts[0]["reasons"][0]
    assert verdict.outcome is Outcome.REJECTED and folded in verdict.reasons[0], verdict


# ---- classes 1 and 2 through the hook handler (ECS-shaped events, stubbed ECS answers) ------------

@pytest.mark.parametrize(("arch", "spelling", "with_ecs_digest"), [
    ("amd64", {"os": "linux", "architecture": "x86_64"}, True),  # the index digest ECS recorded
    ("amd64", {"os": "", "architecture": "amd64"}, False),  # a tag ECS has not resolved at PRE_SCALE_UP
    ("arm64", {"os": "linux", "architecture": "aarch64"}, False),  # the reference app's ARM64 task
    ("arm64", {"os": "linux", "architecture": "arm64", "variant": "v8"}, True),
])
def test_hook_fails_deployment_when_an_unsigned_first_entry_is_spelled_otherwise_class1(
        registry, key, images, arch, spelling, with_ecs_digest):
    # Given a service revision whose task runs an unsigned index: unsigned image first, signed second
    unsigned, signed = images[f"unsigned-{arch}"], images[f"signed-{arch}"]
    index = _index(registry, signed.repository, [_entry(unsigned, spelling),
                                                 _entry(signed, AMD64 if arch == "amd64" else ARM64)], tag=f"hook-{arch}")
    ecs = StubbedEcs()
    ecs.revision([("app", str(index.tag_ref), index.digest if with_ecs_digest else None)],
                 runtime_platform={"cpuArchitecture": "ARM64" if arch == "arm64" else "X86_64",
                                   "operatingSystemFamily": "LINUX"})
    admission = admission_handler(_policy_document(registry.host, key), ecs, insecure_registries=[registry.host])
    # When ECS calls the hook
    response = admission.handle(hook_event())
    # Then the deployment is stopped, and the audit record names the unsigned entry
    assert response["hookStatus"] == "FAILED", response
    [record] = admission.audit_records()
    [entry] = record["images"]
    assert entry["outcome"] == "rejected"
    assert any(unsigned.digest in reason for reason in entry["reasons"]), entry


@pytest.mark.parametrize("folded", ["Manifests", "Digest", "OS"])
def test_hook_fails_deployment_when_a_key_is_folded_class2(registry, key, images, folded):
    signed, unsigned = images["signed-amd64"], images["unsigned-amd64"]
    index = _raw_index(registry, signed.repository, _folded_indexes(signed, unsigned)[folded])
    ecs = StubbedEcs()
    ecs.revision([("app", str(index.ref), index.digest)])
    admission = admission_handler(_policy_document(registry.host, key), ecs, insecure_registries=[registry.host])
    response = admission.handle(hook_event())
    assert response["hookStatus"] == "FAILED", response
    [entry] = admission.audit_records()[0]["images"]
    assert entry["outcome"] == "rejected" and folded in entry["reasons"][0], entry


# ---- agreement with the real runtime -----------------------------------------------------------

_SPELLINGS: list[dict[str, Any] | None] = [
    AMD64, {"os": "linux", "architecture": "x86_64"}, {"os": "LINUX", "architecture": "AMD64"}, {"os": "",
    "architecture": "amd64"}, {"architecture": "x86-64"}, {"os": "linux", "architecture": "386"},
    {"os": "linux", "architecture": "amd64", "variant": "v2"}, {"os": "linux", "architecture": "amd64", "variant": "v1"},
    ARM64, {"os": "linux", "architecture": "aarch64"}, {"os": "linux", "architecture": "arm64", "variant": "v8"},
    {"os": "linux", "architecture": "arm", "variant": "v7"}, {"os": "windows", "architecture": "amd64"},
    {"os": "linux", "architecture": "s390x"}, None,
]


def _generated(images: dict[str, PushedImage], rng: random.Random) -> list[dict[str, Any]]:
    """One index's entries: 1-4 images, each under a random spelling, in random order."""
    names = list(images)
    return [_entry(images[rng.choice(names)], rng.choice(_SPELLINGS)) for _ in range(rng.randint(1, 4))]


def test_containerd_runs_only_what_the_verifier_admitted(registry, registry_client, key, images, containerd, tmp_path):
    # Given generated indexes (spellings, variants, orders; some signed at the index), and the
    # attacks of classes 1 and 2
    rng = random.Random(SEED)
    key_file = tmp_path / "cosign.key"
    key_file.write_bytes(key.private_pem)
    repo = images["signed-amd64"].repository
    by_digest = {image.digest: image for image in images.values()}
    cases: list[tuple[PushedImage, str]] = []
    for number in range(GENERATED_INDEXES):
        index = _index(registry, repo, _generated(images, rng), tag=f"gen-{number}")
        if number % 6 == 0:
            assert sign(registry.host, key_file, str(index.ref)).code == 0
        cases.append((index, rng.choice(["linux/amd64", "linux/arm64"])))
    for text in _folded_indexes(images["signed-amd64"], images["unsigned-amd64"]).values():
        cases.append((_raw_index(registry, repo, text), "linux/amd64"))
    admitted = unpacked = 0
    for index, platform in cases:
        # When the verifier admits one for a platform, and containerd pulls it for that platform
        verdict = _verify_api(registry_client, key, registry.host, str(index.ref), platform)
        if verdict.outcome is not Outcome.VERIFIED:
            assert verdict.reasons, verdict
            continue
        admitted += 1
        pulled = containerd.pull(str(index.ref), platform)
        # Then what containerd unpacked is content the verifier verified: the signed platform
        # manifest itself, or a manifest pinned by the signed index
        verified = verdict.signers[0].verified_digest
        listed = json.loads(index.manifest_bytes)["manifests"]
        allowed = ({_chain_id_of(registry, by_digest[e["digest"]]) for e in listed} if verified == index.digest
                   else {_chain_id_of(registry, by_digest[verified])})
        if pulled.code != 0:
            # The verifier over-approximates (e.g. an amd64/v2 entry that this host's containerd
            # does not match): the runtime then runs nothing, which is agreement too.
            assert "no match for platform" in pulled.output, (index.manifest_bytes, platform, pulled.output)
            continue
        unpacked += 1
        assert pulled.chain_id in allowed, (index.manifest_bytes, platform, pulled.output)
    assert unpacked >= 15, f"only {unpacked} of {admitted} admitted indexes were unpacked; the test proves little"


@pytest.mark.parametrize(("folded", "spelling"), [(None, {"os": "linux", "architecture": "x86_64"}),
                                                  (None, {"os": "", "architecture": "amd64"}), ("Manifests", None)])
def test_containerd_runs_the_unsigned_image_of_each_refused_attack(registry, registry_client, key, images, containerd,
                                                                   folded, spelling):
    # Given an attack index (class 1 spelling, or class 2 folded key)
    signed, unsigned = images["signed-amd64"], images["unsigned-amd64"]
    if folded:
        index = _raw_index(registry, signed.repository, _folded_indexes(signed, unsigned)[folded])
    else:
        index = _index(registry, signed.repository, [_entry(unsigned, spelling), _entry(signed, AMD64)], tag="attack")
    # When the verifier judges it and containerd pulls it
    verdict = _verify_api(registry_client, key, registry.host, str(index.ref), "linux/amd64")
    pulled = containerd.pull(str(index.ref), "linux/amd64")
    # Then the refusal was needed: containerd really runs the unsigned image
    assert verdict.outcome is Outcome.REJECTED, verdict
    assert pulled.chain_id == _chain_id_of(registry, unsigned), pulled.output


# ---- property: a mutated index is never admitted ---------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), how=st.sampled_from(SPELLINGS))
def test_property_never_admits_an_index_with_a_duplicate_or_folded_key(registry, key, images, data, how):
    # Given an index the verifier admits for linux/amd64 (its only amd64 entry is the signed manifest)
    signed, unsigned = images["signed-amd64"], images["unsigned-amd64"]
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [_entry(images["unsigned-arm64"], ARM64), _entry(signed, AMD64)]}
    # When one object anywhere in it gets a second member that Go reads as one of its keys
    path = data.draw(st.sampled_from(object_paths(document)), label="object")
    target = at(document, path)
    name = data.draw(st.sampled_from(sorted(target)), label="key")
    # a value of the same JSON type as the original, so that Go (the registry) can decode it too
    same_type = {str: [unsigned.digest, "linux", "amd64", unsigned.media_type], int: [unsigned.size, 2],
                 list: [[_entry(unsigned, AMD64)]], dict: [{"os": "linux", "architecture": "amd64"}, _entry(unsigned, AMD64)]}
    value = data.draw(st.sampled_from(same_type[type(target[name])]), label="value")
    raw = with_member(document, path, respell(name, how), value)
    try:
        index = _raw_index(registry, signed.repository, raw.decode())
    except AssertionError:
        event("the registry refused the document")
        return  # nothing to verify
    verdict = _verify_api(RegistryClient(insecure_registries={registry.host}), key, registry.host, str(index.ref),
                          "linux/amd64")
    # Then it is rejected, with a reason, and not by an internal error
    assert verdict.outcome is Outcome.REJECTED, (raw, verdict)
    assert verdict.reasons and not any("internal error" in r for r in verdict.reasons), verdict
