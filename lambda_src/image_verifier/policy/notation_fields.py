"""The `awsSigner` and `notationX509` parts of a policy: parsing, validation and writing back.

Certificate-level checks (PEM parsing, the pinned AWS Signer root, distinguished names) belong to
the Notation verifier; this module calls them and reports their errors at the field's path. They are
imported where they are called, so a policy without Notation signers never loads the Notation
package (or cryptography.x509, or botocore): a cosign-only CLI run starts faster.
"""

from __future__ import annotations

from typing import Any

from ._reader import Node
from .model import AwsSignerTrust, NotationX509Trust

_SCHEMES = {"notary.x509": "notary.x509", "notary.x509.signingAuthority": "notary.x509.signingAuthority"}
_LEVELS = {"strict": "strict", "permissive": "permissive", "audit": "audit"}
_VERIFY_TIMESTAMP = {"always": "always", "afterCertExpiry": "afterCertExpiry"}
MAX_CERTIFICATES = 20  # roots per signer; real trust stores hold one to three


def _pems(node: Node, *, min_items: int = 0) -> tuple[str, ...]:
    from ..notation.trust import parse_root_certificates

    pems = tuple(n.string() for n in node.items(min_items=min_items, max_items=MAX_CERTIFICATES))
    for index, pem in enumerate(pems):
        node.child(index).convert(lambda _, pem=pem: parse_root_certificates([pem]))
    return pems


def _override(node: Node) -> dict[str, str]:
    """A Notary Project `override` map: each key a step the spec lets a policy override, each value
    one of the actions the spec allows for that step (integrity never)."""
    from ..notation.levels import override_entry

    if not isinstance(node.value, dict):
        raise node.fail("expected an object of verification step -> action, e.g. {\"expiry\": \"log\"}")
    override = {}
    for key in node.value:
        child = node.child(key)
        if not isinstance(child.value, str):
            raise child.fail(f"expected a string action, got {type(child.value).__name__}")
        step, action = child.convert(lambda value, key=key: override_entry(key, value))
        override[step.value] = action.value
    return override


def aws_signer_trust(node: Node) -> AwsSignerTrust:
    from ..notation.awssigner import check_pinned_root, default_root_pems, parse_signing_profile_arn

    node.object(required=("signingProfileArns",),
                optional=("rootCertificates", "customRootCertificates", "revocationCheck", "override"))
    arns = tuple(n.convert(lambda _, n=n: parse_signing_profile_arn(n.string()))
                 for n in node.child("signingProfileArns").items(min_items=1, max_items=50))
    roots = _pems(node.child("rootCertificates")) if node.has("rootCertificates") else ()
    for index, pem in enumerate(roots):
        node.child("rootCertificates").child(index).convert(lambda _, pem=pem: check_pinned_root(pem))
    custom = _pems(node.child("customRootCertificates")) if node.has("customRootCertificates") else ()
    if not roots:  # the verifier then trusts the shipped roots of the profiles' partitions (aws, aws-us-gov)
        node.child("signingProfileArns").convert(lambda _: default_root_pems(arns, custom_root_certificates=custom))
    revocation_check = node.child("revocationCheck").boolean() if node.has("revocationCheck") else True
    override = _override(node.child("override")) if node.has("override") else {}
    if not revocation_check and override.get("revocation", "skip") != "skip":
        raise node.child("override").child("revocation").fail(
            f"revocationCheck is false, which skips revocation, but override asks for {override['revocation']!r}; "
            "drop one of the two (revocationCheck false is the same as override revocation: skip)")
    return AwsSignerTrust(
        signing_profile_arns=arns,
        root_certificates=roots,
        custom_root_certificates=custom,
        revocation_check=revocation_check,
        override=override,
    )


def notation_x509_trust(node: Node) -> NotationX509Trust:
    from ..notation.identity import parse_trusted_identities

    node.object(
        required=("rootCertificates", "trustedIdentities"),
        optional=("signingScheme", "tsaRootCertificates", "verificationLevel", "verifyTimestamp", "override"),
    )
    identities_node = node.child("trustedIdentities")
    identities = tuple(n.string() for n in identities_node.items(min_items=1, max_items=100))
    identities_node.convert(lambda _: parse_trusted_identities(identities))
    return NotationX509Trust(
        root_certificates=_pems(node.child("rootCertificates"), min_items=1),
        trusted_identities=identities,
        signing_scheme=node.child("signingScheme").choice(_SCHEMES) if node.has("signingScheme") else "notary.x509",
        tsa_root_certificates=_pems(node.child("tsaRootCertificates")) if node.has("tsaRootCertificates") else (),
        verification_level=node.child("verificationLevel").choice(_LEVELS) if node.has("verificationLevel") else "strict",
        verify_timestamp=node.child("verifyTimestamp").choice(_VERIFY_TIMESTAMP) if node.has("verifyTimestamp") else "always",
        override=_override(node.child("override")) if node.has("override") else {},
    )


def aws_signer_document(trust: AwsSignerTrust) -> dict[str, Any]:
    doc: dict[str, Any] = {"signingProfileArns": list(trust.signing_profile_arns),
                           "revocationCheck": trust.revocation_check}
    if trust.root_certificates:
        doc["rootCertificates"] = list(trust.root_certificates)
    if trust.custom_root_certificates:
        doc["customRootCertificates"] = list(trust.custom_root_certificates)
    if trust.override:
        doc["override"] = dict(trust.override)
    return doc


def notation_x509_document(trust: NotationX509Trust) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "rootCertificates": list(trust.root_certificates),
        "trustedIdentities": list(trust.trusted_identities),
        "signingScheme": trust.signing_scheme,
        "verificationLevel": trust.verification_level,
        "verifyTimestamp": trust.verify_timestamp,
    }
    if trust.tsa_root_certificates:
        doc["tsaRootCertificates"] = list(trust.tsa_root_certificates)
    if trust.override:
        doc["override"] = dict(trust.override)
    return doc
