"""Small pure helpers of the admission constructs: IAM resources from patterns, cdk-nag finding names."""

from __future__ import annotations

import pytest

from constructs_lib._nag import render
from constructs_lib.admission._permissions import ecr_repository_arn


@pytest.mark.parametrize(("pattern", "arn"), [
    ("111111111111.dkr.ecr.us-east-1.amazonaws.com/team/app", "arn:aws:ecr:us-east-1:111111111111:repository/team/app"),
    ("111111111111.dkr.ecr.us-east-1.amazonaws.com/team/**", "arn:aws:ecr:us-east-1:111111111111:repository/team/*"),
    ("111111111111.dkr.ecr.cn-north-1.amazonaws.com.cn/a/*", "arn:aws-cn:ecr:cn-north-1:111111111111:repository/a/*"),
    ("public.ecr.aws/aws-observability/*", None),
    ("ghcr.io/acme/**", None),
])
def test_ecr_patterns_become_repository_arns_and_other_registries_need_no_iam(pattern, arn):
    assert ecr_repository_arn(pattern) == arn


def test_rejects_ecr_pattern_when_the_region_is_a_wildcard():
    with pytest.raises(ValueError, match="name the account and region"):
        ecr_repository_arn("111111111111.dkr.ecr.*.amazonaws.com/team/**")


def test_renders_resolved_values_the_way_cdk_nag_names_findings():
    value = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":ecs:us-east-1:111111111111:service-revision/",
                               {"Ref": "ClusterEB0386A7"}, "/*"]]}
    assert render(value) == "arn:<AWS::Partition>:ecs:us-east-1:111111111111:service-revision/<ClusterEB0386A7>/*"
    assert render({"Fn::GetAtt": ["Fn9270CBC0", "Arn"]}) == "<Fn9270CBC0.Arn>"


def test_lambda_pins_agree_with_the_lock_the_tests_install_from():
    # Given the Lambda asset's pins and the project's lock (both written by `make lock`)
    from pathlib import Path

    from constructs_lib._bundling import lambda_pins, pinned_versions

    root = Path(__file__).parents[2]
    lock = pinned_versions(lambda_pins(root / "requirements.lock"))
    bundled = pinned_versions(lambda_pins())
    # Then every bundled distribution is in the lock at the same version (so the SDK the handler is
    # tested with is the SDK it ships with), and the runtime's direct dependencies are all bundled
    assert {name: lock.get(name) for name in bundled} == bundled
    assert {"asn1crypto", "aws-lambda-powertools", "boto3", "botocore", "cryptography", "urllib3"} <= set(bundled)
