"""What importing the package costs: the CDK side must not need the runtime's dependencies."""

from __future__ import annotations

import json
import os
import subprocess
import sys

RUNTIME_ONLY = ("boto3", "botocore", "urllib3", "asn1crypto", "aws_lambda_powertools")


def _modules_after(statement: str) -> set[str]:
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
           "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                            check=True)
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_policy_model_and_constructs_import_without_the_runtime_dependencies():
    # When a CDK app imports the constructs (which build the policy with image_verifier.policy)
    loaded = _modules_after("import constructs_lib, image_verifier.policy")
    # Then none of the verifier's runtime dependencies is loaded (the [cdk] extra does not install them)
    assert not loaded & set(RUNTIME_ONLY), sorted(loaded & set(RUNTIME_ONLY))


def test_package_names_resolve_on_first_use():
    # Given the lazy package namespace
    import image_verifier

    # Then every exported name resolves, and an unknown one is an AttributeError
    assert all(getattr(image_verifier, name) is not None for name in image_verifier.__all__)
    try:
        image_verifier.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown attribute resolved")


def test_every_public_name_has_a_home():
    import image_verifier

    assert sorted(image_verifier.__all__) == sorted(image_verifier._EXPORTS)
