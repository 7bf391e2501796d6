"""Hand-written cloud assemblies for the report's reading rules (cases no construct of this package writes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ACCOUNT, REGION = "444444444444", "us-west-2"


def write_assembly(root: Path, stacks: dict[str, dict[str, Any]], *, metadata: dict[str, dict] | None = None,
                   assets: dict[str, dict[str, str]] | None = None, env: str = f"aws://{ACCOUNT}/{REGION}") -> Path:
    """``stacks``: name -> template; ``metadata``: name -> construct metadata; ``assets``: hash -> {file: text}."""
    root.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, Any] = {}
    for name, template in stacks.items():
        (root / f"{name}.template.json").write_text(json.dumps(template))
        artifact: dict[str, Any] = {"type": "aws:cloudformation:stack", "environment": env,
                                    "properties": {"templateFile": f"{name}.template.json"}}
        if metadata and name in metadata:
            (root / f"{name}.metadata.json").write_text(json.dumps(metadata[name]))
            artifact["additionalMetadataFile"] = f"{name}.metadata.json"
        artifacts[name] = artifact
    for asset_hash, files in (assets or {}).items():
        directory = root / f"asset.{asset_hash}"
        directory.mkdir()
        for file_name, text in files.items():
            (directory / file_name).write_text(text)
    (root / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    return root


def role(trust: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [trust]}, **properties}}


def policy(role_id: str, *statements: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::IAM::Policy", "Properties": {
        "PolicyName": f"{role_id}Policy", "Roles": [{"Ref": role_id}],
        "PolicyDocument": {"Version": "2012-10-17", "Statement": list(statements)}}}


def signing_key(*statements: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"Type": "AWS::KMS::Key", "Properties": {
        "KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY",
        "KeyPolicy": {"Version": "2012-10-17", "Statement": list(statements)}, **properties}}


ROOT_ALLOWS_EVERYTHING = {"Sid": "Root", "Effect": "Allow", "Action": "kms:*", "Resource": "*",
                          "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}
