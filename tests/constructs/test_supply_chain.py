"""SignedImageSupplyChain: a handful of statements give repositories, signers and CI roles."""

from __future__ import annotations

import pytest
from aws_cdk import aws_ecr as ecr
from aws_cdk.assertions import Match, Template

from constructs_lib import (
    CodeBuildSigningRole,
    CodeBuildTrust,
    GitHubActionsTrust,
    RegistrySigningRules,
    SignedImageSupplyChain,
)
from tests.constructs.checks import assert_clean, new_app, new_stack, synth_error


@pytest.fixture(scope="module")
def synthesized():
    # Given two chains sharing one registry's signing rules, plus an extra CI role
    app = new_app()
    stack = new_stack(app)
    rules = RegistrySigningRules(stack, "SigningRules")
    payments = SignedImageSupplyChain(
        stack, "Payments",
        repository_names=["payments/api"],
        cosign_key_alias="alias/payments/cosign",
        signing_rules=rules,
        github=GitHubActionsTrust(repository="acme/payments"),
    )
    SignedImageSupplyChain(
        stack, "Search",
        repositories=[ecr.Repository.from_repository_name(stack, "Existing", "search/indexer")],
        signing_rules=rules,
        codebuild=CodeBuildTrust(project_names=["search-build"]),
    )
    payments.add_ci_role(CodeBuildSigningRole(stack, "ExtraBuilder"))
    return app, app.synth(), stack, payments


def test_chains_add_their_rules_to_the_shared_signing_configuration(synthesized):
    _app, _assembly, stack, _payments = synthesized
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::ECR::SigningConfiguration", 1)
    template.has_resource_properties(
        "AWS::ECR::SigningConfiguration",
        {
            "Rules": [
                {"RepositoryFilters": [{"Filter": "payments/api", "FilterType": "WILDCARD_MATCH"}],
                 "SigningProfileArn": {"Fn::GetAtt": [Match.string_like_regexp("^PaymentsSigningProfile"), "Arn"]}},
                {"RepositoryFilters": [{"Filter": "search/indexer", "FilterType": "WILDCARD_MATCH"}],
                 "SigningProfileArn": {"Fn::GetAtt": [Match.string_like_regexp("^SearchSigningProfile"), "Arn"]}},
            ]
        },
    )


def test_chain_signers_are_its_ci_roles(synthesized):
    # Given
    _app, _assembly, stack, payments = synthesized
    # Then the cosign key names the GitHub role and the extra builder as its only signers
    assert [stack.resolve(a) for a in payments.cosign_key.signer_arns] == [
        stack.resolve(payments.github_role.role_arn),
        stack.resolve(payments.ci_roles[1].role_arn),
    ]


def test_supply_chain_stack_is_clean(synthesized):
    app, assembly, *_ = synthesized
    assert_clean(app, assembly)


def test_rejects_chain_when_it_has_no_repository():
    with pytest.raises(ValueError, match=r"needs repository_names or repositories"):
        SignedImageSupplyChain(new_stack(new_app()), "Chain")


def test_rejects_chain_when_nothing_would_sign():
    with pytest.raises(ValueError, match=r"nothing would sign: keep managed_signing=True or give cosign_key_alias"):
        SignedImageSupplyChain(new_stack(new_app()), "Chain", repository_names=["team-a"], managed_signing=False)


def test_rejects_repository_name_when_it_has_upper_case():
    with pytest.raises(ValueError, match=r"a repository name must be a lower-case ECR repository name, got 'Payments/API'"):
        SignedImageSupplyChain(new_stack(new_app()), "Chain", repository_names=["Payments/API"])


def test_rejects_existing_repository_when_its_name_is_a_token():
    stack = new_stack(new_app())
    repo = ecr.Repository(stack, "Repo")
    with pytest.raises(ValueError, match=r"repository Stack/Repo has a token for a name, so no signing rule can match it"):
        SignedImageSupplyChain(stack, "Chain", repositories=[repo])


def test_rejects_two_chains_when_each_declares_the_registry_signing_rules():
    app = new_app()
    stack = new_stack(app)
    SignedImageSupplyChain(stack, "A", repository_names=["team-a"])
    SignedImageSupplyChain(stack, "B", repository_names=["team-b"])
    assert "ECR keeps one signing configuration per registry" in synth_error(app)


def test_rejects_cosign_key_access_when_the_chain_has_no_cosign_key():
    # Given a chain signed by ECR managed signing only
    app = new_app()
    chain = SignedImageSupplyChain(new_stack(app), "Images", repository_names=["team/app"])
    # When / Then
    assert chain.has_cosign_key is False
    with pytest.raises(ValueError, match="supply chain Stack/Images has no cosign key; give SignedImageSupplyChain"
                                         r"\(\.\.\., cosign_key_alias="):
        _ = chain.cosign_key
