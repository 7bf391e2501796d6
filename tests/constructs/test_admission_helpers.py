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


def test_bundled_requirements_name_the_runtime_dependencies_of_the_package():
    # Given the distribution's dependencies and the pins bundled into the Lambda asset
    import tomllib
    from pathlib import Path

    from constructs_lib._bundling import RUNTIME_REQUIREMENTS

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    synth_only = {"aws-cdk-lib", "constructs"}
    declared = {d.split(">")[0].split("=")[0].strip() for d in project["dependencies"]} - synth_only
    # Then the two lists name the same packages
    assert {r.split("==")[0] for r in RUNTIME_REQUIREMENTS} == declared
