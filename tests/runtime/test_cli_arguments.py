"""The command line: bad arguments get exit 2 and a clear message."""

from __future__ import annotations

import pytest

from tests.e2e.cli_helpers import run_cli, write_policy
from tests.support.cosign_material import KeyPair, cosign_policy


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "0"])
def test_rejects_usage_with_exit_2_when_timeout_is_not_a_positive_number_of_seconds(tmp_path, timeout):
    # 'nan' made every deadline check pass (min(cap, nan) is cap): the decision had no deadline at all
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}},
                                                  images="reg.example.com/**"))
    result = run_cli("verify", "--policy", str(policy), "--timeout", timeout, "reg.example.com/app:v1")
    assert result.code == 2
    assert "--timeout" in result.err and "positive number of seconds" in result.err
    assert "Traceback" not in result.err
