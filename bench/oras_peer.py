"""The peer: the registry fetches a cosign verification needs, done with oras-py, in its own process.

    .venv/bin/python bench/oras_peer.py --registry HOST:PORT IMAGE@DIGEST...

For each image, by digest, the way a user of oras-py's registry client (`oras.provider.Registry`,
plain HTTP to an insecure registry) would write it: the image manifest, the cosign signature tag
`sha256-<hex>.sig` manifest, then its signature layer blob (the simple-signing payload). One image
after the other, each fetch after the one before: oras-py's user guide shows its calls one at a
time and no thread pool, and `Registry` holds one `requests.Session`. No cryptography: oras-py
verifies no signature and no digest, so neither does this script; it only checks that each fetch
answered 200 and that the payload is as long as its descriptor says. Prints one JSON line:
`{"images": N, "fetches": 3N, "payload_bytes": ...}`. `bench/measure.py` runs it as a fresh
process per run, beside `python -m image_verifier verify`.
"""

from __future__ import annotations

import argparse
import json

import oras.provider


def signature_tag(digest: str) -> str:
    """cosign's legacy signature tag for a manifest digest: `sha256:<hex>` -> `sha256-<hex>.sig`."""
    algorithm, _, hex_digest = digest.partition(":")
    return f"{algorithm}-{hex_digest}.sig"


def fetch(registry: oras.provider.Registry, reference: str) -> tuple[int, int]:
    """The three fetches for one `HOST/REPO@DIGEST`; returns (fetches, payload bytes)."""
    repository, _, digest = reference.partition("@")
    registry.get_manifest(reference)  # raises on a non-200 answer (Registry._check_200_response)
    signature = registry.get_manifest(f"{repository}:{signature_tag(digest)}")
    layer = signature["layers"][0]
    response = registry.get_blob(repository, layer["digest"])
    if response.status_code != 200 or len(response.content) != layer["size"]:
        raise SystemExit(f"the signature payload of {reference} was not served: HTTP {response.status_code}, "
                         f"{len(response.content)} bytes where the descriptor says {layer['size']}")
    return 3, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--registry", required=True, help="HOST:PORT of the (plain HTTP) registry")
    parser.add_argument("images", nargs="+", help="HOST:PORT/REPOSITORY@sha256:<hex>")
    args = parser.parse_args()
    registry = oras.provider.Registry(hostname=args.registry, insecure=True)
    fetches = payload = 0
    for reference in args.images:
        done, size = fetch(registry, reference)
        fetches, payload = fetches + done, payload + size
    print(json.dumps({"images": len(args.images), "fetches": fetches, "payload_bytes": payload}))


if __name__ == "__main__":
    main()
