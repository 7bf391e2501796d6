"""What the benchmarks run against: the real test registry behind the latency proxy, and real
cosign and Notation signatures on small real images (the test suite's own builders)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_verifier.oci import Descriptor
from tests.support.cosign_material import KeyPair, cosign_policy, push_cosign_signed
from tests.support.images import PushedImage, push_image, unique_repository
from tests.support.notation_registry import push_notation_vector
from tests.support.notation_vectors import sign
from tests.support.pki import code_signing_chain

IDENTITY = "x509.subject: C=US, ST=WA, O=Acme"
PROXY_SCRIPT = Path(__file__).with_name("latency_proxy.py")


class Proxy:
    """The latency proxy in its own process (so its event loop never waits on the verifier's GIL)."""

    def __init__(self, upstream: str, rtt_ms: float) -> None:
        self.rtt_ms = rtt_ms
        self.process = subprocess.Popen([sys.executable, str(PROXY_SCRIPT), "--upstream", upstream, "--rtt-ms", str(rtt_ms)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        first = self.process.stdout.readline().split()
        if len(first) != 2 or first[0] != "listening":
            raise RuntimeError(f"the latency proxy did not start: {first}")
        self.host = first[1]

    def stats(self) -> dict[str, Any]:
        """What crossed the proxy since the last call (and start counting afresh)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass(frozen=True, kw_only=True)
class SignedSet:
    """Images signed in one format, and the policy (a JSON document) that trusts their signer."""

    format: str  # "cosign" | "notation"
    images: list[PushedImage]
    policy: dict[str, Any]
    material: Any  # the cosign KeyPair or the Notation Chain, for the crypto timing


def cosign_set(registry: Any, count: int) -> SignedSet:
    key = KeyPair.generate()
    images = push_cosign_signed(registry, key, unique_repository("bench-cosign"), count)
    return SignedSet(format="cosign", images=images, material=key,
                     policy=cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images="PROXY/**"))


def notation_set(registry: Any, count: int) -> SignedSet:
    chain = code_signing_chain("p256")
    repo = unique_repository("bench-notation")
    images = []
    for i in range(count):
        image = push_image(registry, repo, f"v{i}", layer_bytes=f"bench-notation-{i}".encode())
        push_notation_vector(registry, image, sign(Descriptor(media_type=image.media_type, digest=image.digest,
                                                              size=image.size), chain))
        images.append(image)
    policy = {"version": "1",
              "trustedSigners": [{"name": "corp", "notationX509": {"rootCertificates": [chain.root.pem],
                                                                   "trustedIdentities": [IDENTITY]}}],
              "rules": [{"name": "signed", "images": ["PROXY/**"], "anyOf": ["corp"]}]}
    return SignedSet(format="notation", images=images, material=chain, policy=policy)


def policy_for(signed: SignedSet, proxy_host: str) -> dict[str, Any]:
    """The set's policy with its image pattern pointing at the proxy."""
    return json.loads(json.dumps(signed.policy).replace("PROXY/**", f"{proxy_host}/**"))


def references(signed: SignedSet, proxy_host: str, count: int) -> list[str]:
    """The first `count` images, by digest, through the proxy."""
    return [f"{proxy_host}/{image.repository}@{image.digest}" for image in signed.images[:count]]
