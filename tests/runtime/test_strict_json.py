"""The one strict JSON reader reads registry documents and signed payloads as Go would, or refuses.

Issue 9, class 2: Go's encoding/json fills `manifests` from `Manifests` (and `ſ`/Kelvin-sign
spellings), the last folded key winning; a reader that sees only exact keys can be shown another
document than the runtime reads. Property tests mutate real documents at any depth.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from image_verifier._json import KNOWN_FIELDS, fold, strict_json_loads
from image_verifier.cosign.payload import SimpleSigningPayload
from image_verifier.errors import HostileArtifactError, SignatureIntegrityError, VerificationError
from image_verifier.notation.payload import check_payload
from image_verifier.oci import OCI_INDEX, OCI_MANIFEST, Descriptor, Manifest
from image_verifier.oci import strict_json_loads as reexported
from tests.support.images import sha256_digest
from tests.support.json_mutations import SPELLINGS, at, object_paths, respell, with_member

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
INDEX = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
    {"mediaType": OCI_MANIFEST, "digest": DIGEST_A, "size": 10, "platform": {"os": "linux", "architecture": "amd64"}},
]}
PAYLOAD = {"critical": {"identity": {"docker-reference": "registry.example.com/app"},
                        "image": {"docker-manifest-digest": DIGEST_A}, "type": "cosign container image signature"},
           "optional": {"git-sha": "abc"}}


def _raw(text: str) -> bytes:
    return text.encode()


def _manifest(raw: bytes) -> Manifest:
    return Manifest.parse(digest=sha256_digest(raw), raw=raw, content_type=None)


def test_reads_a_plain_document_and_keeps_the_old_import_path():
    # Given / When a well-formed index is read through both import paths
    raw = json.dumps(INDEX).encode()
    # Then both are the one reader and read the same thing
    assert reexported is strict_json_loads
    assert strict_json_loads(raw, what="the index") == INDEX


@pytest.mark.parametrize(("document", "message"), [
    # class 2 regression: an index with both manifests and Manifests (Go reads the last)
    ('{"schemaVersion":2,"manifests":[],"Manifests":[{"digest":"x"}]}', "keys 'manifests' and 'Manifests'"),
    # a descriptor with digest and Digest
    ('{"mediaType":"m","digest":"sha256:1","Digest":"sha256:2","size":1}', "keys 'digest' and 'Digest'"),
    # a platform with os and OS
    ('{"platform":{"os":"windows","OS":"linux","architecture":"amd64"}}', "keys 'os' and 'OS'"),
    # Unicode simple folding: long s and Kelvin sign
    ('{"size":1,"\u017fize":2}', "one field to Go's case-insensitive decoder"),
    ('{"signatures":[{"sig":"","\u212aeyid":"a","keyid":"b"}]}', "one field to Go's case-insensitive decoder"),
    ('{"a":1,"a":2}', "duplicate key 'a'"),
])
def test_rejects_document_when_two_keys_fold_to_one_field(document, message):
    with pytest.raises(HostileArtifactError, match="not valid JSON") as caught:
        strict_json_loads(_raw(document), what="the index")
    assert message in str(caught.value)


@pytest.mark.parametrize(("document", "key", "field"), [
    ('{"schemaVersion":2,"Manifests":[]}', "Manifests", "manifests"),
    ('{"mediaType":"m","DIGEST":"sha256:1","size":1}', "DIGEST", "digest"),
    ('{"platform":{"OS":"linux","architecture":"amd64"}}', "OS", "os"),
    ('{"platform":{"os":"linux","Architecture":"amd64"}}', "Architecture", "architecture"),
    ('{"critical":{"Image":{"docker-manifest-digest":"sha256:1"}}}', "Image", "image"),
    ('{"targetArtifact":{"\u017fize":1}}', "\u017fize", "size"),
    ('{"platform":{"OS.Version":"10"}}', "OS.Version", "os.version"),
])
def test_rejects_document_when_a_key_is_a_misspelled_field_name(document, key, field):
    with pytest.raises(HostileArtifactError, match=f"which Go reads as the field '{field}'") as caught:
        strict_json_loads(_raw(document), what="the manifest")
    assert repr(key) in str(caught.value)


def test_accepts_a_sigstore_bundle_with_a_transparency_log_entry():
    # Given a bundle as cosign writes it with a tlog entry (`logId.keyId` beside DSSE's `keyid`)
    document = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": {"publicKey": {"hint": "aGludA=="}, "tlogEntries": [
                    {"logIndex": "1", "logId": {"keyId": "a2V5"}, "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                     "integratedTime": "1", "inclusionPromise": {"signedEntryTimestamp": "c2V0"},
                     "inclusionProof": {"logIndex": "1", "rootHash": "cg==", "treeSize": "2", "hashes": [],
                                        "checkpoint": {"envelope": "e"}}, "canonicalizedBody": "Yg=="}]},
                "dsseEnvelope": {"payload": "e30=", "payloadType": "application/vnd.in-toto+json",
                                 "signatures": [{"sig": "c2ln", "keyid": ""}]}}
    # When / Then it is read as written
    assert strict_json_loads(json.dumps(document).encode(), what="the sigstore bundle") == document


def test_accepts_map_keys_that_only_look_like_field_names():
    # Given annotations and cosign `optional` claims: Go decodes them as maps, matching keys exactly
    document = '{"annotations":{"Digest":"x","Size":"1"},"optional":{"Type":"release","nested":{"Image":"y"}}}'
    # When / Then they are read as written
    assert strict_json_loads(_raw(document), what="the manifest")["optional"]["Type"] == "release"


@pytest.mark.parametrize("raw", [b'{"size": NaN}', b'{"size": Infinity}', b'{"a": "\\ud800"}', b'{"\\udc00": 1}'])
def test_rejects_document_when_go_would_read_a_value_otherwise(raw):
    with pytest.raises(HostileArtifactError, match="the payload"):
        strict_json_loads(raw, what="the payload")


def test_rejects_index_when_manifests_is_folded_through_the_manifest_parser():
    # Given an index whose Go reading (Manifests, last) differs from the exact one (manifests)
    raw = _raw('{"schemaVersion":2,"mediaType":"%s","manifests":[],"Manifests":[]}' % OCI_INDEX)
    # When / Then the manifest parser refuses it as a hostile artifact
    with pytest.raises(HostileArtifactError, match="Manifests"):
        _manifest(raw)


def test_rejects_simple_signing_payload_when_the_digest_key_is_folded():
    # Given a payload whose docker-manifest-digest has a second, upper-case spelling
    raw = json.dumps(PAYLOAD).replace('"docker-manifest-digest"', f'"DOCKER-MANIFEST-DIGEST": "{DIGEST_B}", '
                                                                   '"docker-manifest-digest"').encode()
    # When / Then it is refused
    with pytest.raises(VerificationError, match="DOCKER-MANIFEST-DIGEST"):
        SimpleSigningPayload.parse(raw)


def test_rejects_notation_payload_when_target_digest_is_folded():
    subject = Descriptor(media_type=OCI_MANIFEST, digest=DIGEST_A, size=10)
    raw = _raw('{"targetArtifact":{"mediaType":"%s","digest":"%s","Digest":"%s","size":10}}'
               % (OCI_MANIFEST, DIGEST_A, DIGEST_B))
    with pytest.raises(SignatureIntegrityError, match="'digest' and 'Digest'"):
        check_payload(raw, subject)


def test_folds_at_least_as_broadly_as_go():
    # Go's foldName maps each rune to the smallest of its simple-fold orbit; these orbits matter
    for go_equal in [("s", "\u017f", "S"), ("k", "\u212a", "K"), ("manifests", "MANIFESTS", "Manifests")]:
        assert len({fold(k) for k in go_equal}) == 1, go_equal


# ---- property-based: folded and duplicated keys at any depth ----------------------------------

_SPELLINGS = st.sampled_from([s for s in SPELLINGS if s != "exact"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), doc=st.sampled_from([INDEX, PAYLOAD]), how=_SPELLINGS, duplicate=st.booleans())
def test_property_never_reads_a_document_with_a_folded_or_duplicate_key(data, doc, how, duplicate):
    # Given a real document, one object in it, and one of its keys
    document = json.loads(json.dumps(doc))
    path = data.draw(st.sampled_from([p for p in object_paths(document) if at(document, p)]))
    key = data.draw(st.sampled_from(sorted(at(document, path))))
    # When a second member is added: the exact key again, or a Go-folded spelling of it
    raw = with_member(document, path, key if duplicate else respell(key, how), "sha256:" + "c" * 64)
    # Then the reader refuses it with a reason, never returning a reading Go might not share
    with pytest.raises(HostileArtifactError) as caught:
        strict_json_loads(raw, what="the document")
    assert "the document" in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_property_garbage_is_a_hostile_artifact_or_plain_json(raw):
    # Given any bytes, When read, Then either a value or HostileArtifactError with a reason: nothing else
    try:
        strict_json_loads(raw, what="the blob")
    except HostileArtifactError as exc:
        assert "the blob" in str(exc)


@settings(max_examples=100, deadline=None)
@given(key=st.sampled_from(sorted(KNOWN_FIELDS)), how=_SPELLINGS)
def test_property_a_respelled_field_name_alone_is_refused(key, how):
    respelled = respell(key, how)
    raw = json.dumps({"outer": {respelled: 1}}).encode()
    if respelled == key:
        assert strict_json_loads(raw, what="the document") == {"outer": {key: 1}}
        return
    with pytest.raises(HostileArtifactError, match="which Go reads as the field"):
        strict_json_loads(raw, what="the document")
