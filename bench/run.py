"""Benchmark: how long a cosign verification takes against a real local registry, and how many requests.

Starts Debian's docker-registry on 127.0.0.1, pushes and signs IMAGES small images, then verifies
them cold (new client: no connections, no caches) and warm (the same client again), serially and
as one parallel decision. Prints a table; nothing is asserted. Run with `make bench`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from image_verifier.composition import build_verifier  # noqa: E402
from image_verifier.cosign.sign import PemSigner, sign_image  # noqa: E402
from image_verifier.deadline import Deadline  # noqa: E402
from image_verifier.policy import Policy  # noqa: E402
from image_verifier.registry import RegistryClient  # noqa: E402
from image_verifier.verifier import ImageRequest  # noqa: E402
from tests.support.cosign_material import KeyPair, cosign_policy  # noqa: E402
from tests.support.images import push_image, unique_repository  # noqa: E402
from tests.support.local_registry import start_registry, stop_registry  # noqa: E402

IMAGES = 20
ROUNDS = 5


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        registry, process = start_registry(Path(workdir))
        try:
            run(registry)
        finally:
            stop_registry(process)


def run(registry) -> None:  # type: ignore[no-untyped-def]
    key = KeyPair.generate()
    repo = unique_repository("bench")
    images = [push_image(registry, repo, f"v{i}", layer_bytes=f"bench-{i}".encode()) for i in range(IMAGES)]
    writer = RegistryClient(insecure_registries={registry.host}).bound(Deadline.after(60))
    for image in images:
        sign_image(writer, image.ref, PemSigner(key.private_pem))
    policy = Policy.from_json(cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry.host}/**"))
    requests = [ImageRequest(image=str(image.tag_ref)) for image in images]

    rows = []
    for label, parallel in (("serial", False), ("parallel", True)):
        cold, warm, counts = [], [], []
        for _ in range(ROUNDS):
            client = RegistryClient(insecure_registries={registry.host})
            verifier = build_verifier(policy, registry=client)
            for timings in (cold, warm):
                before = client.request_count
                started = time.perf_counter()
                if parallel:
                    decision = verifier.decide(requests, deadline=Deadline.after(60))
                    assert decision.admitted
                else:
                    for request in requests:
                        assert verifier.decide([request], deadline=Deadline.after(60)).admitted
                timings.append((time.perf_counter() - started) * 1000)
                counts.append(client.request_count - before)
        rows.append((label, statistics.median(cold), statistics.median(warm), statistics.median(counts) / IMAGES))

    print(f"cosign legacy verification of {IMAGES} signed images, local docker-registry, median of {ROUNDS} rounds")
    print(f"{'mode':<10} {'cold ms':>10} {'warm ms':>10} {'ms/image warm':>14} {'requests/image':>15}")
    for label, cold_ms, warm_ms, per_image in rows:
        print(f"{label:<10} {cold_ms:>10.1f} {warm_ms:>10.1f} {warm_ms / IMAGES:>14.2f} {per_image:>15.1f}")


if __name__ == "__main__":
    main()
