"""Test helpers shared by every test suite: a real local OCI registry, an image builder that
pushes real images through independent HTTP code, and a tiny fake registry for what the real one
cannot do (referrers API, redirects, bearer tokens, slowness, 5xx).

Import them as `from tests.support.images import push_image`, or use the fixtures in
`tests/conftest.py` (`registry`, `registry_client`, `fake_registry`, `fake_registry_factory`).
"""
