#!/usr/bin/env python3
"""The reference app: every construct of constructs_lib, synthesized offline.

``build_app()`` returns the App with cdk-nag (AwsSolutionsChecks, cdk-nag v3) registered, so an
unacknowledged finding fails synth. Later issues add stacks here (an ECS service behind the
admission controller) from the stacks that ``build_app`` returns on ``app.node``.
"""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from reference import BreakGlassStack, SigningStack
from reference.admission_stack import add_admission_stack


def build_app(outdir: str | None = None) -> App:
    """Build the reference app (``outdir`` defaults to what the CDK CLI asks for, else cdk.out)."""
    app = App(outdir=outdir, analytics_reporting=False)
    SigningStack(app, "SignedImagesSigning")
    BreakGlassStack(app, "SignedImagesBreakGlass")
    add_admission_stack(app)
    # write_suppressions_to_cloud_formation keeps each acknowledgement and its reason in the
    # template metadata, where scripts/synth_report.py and reviewers read them.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    return app


if __name__ == "__main__":
    build_app().synth()
