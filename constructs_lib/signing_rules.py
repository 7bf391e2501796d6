"""ECR managed signing: the registry's one signing configuration (``AWS::ECR::SigningConfiguration``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from aws_cdk import Annotations, Stack, Token
from aws_cdk import aws_ecr as ecr
from constructs import Construct

from . import _defaults
from ._tree import add_validation, describe_environment, find_in_app, lazy, same_environment, same_value
from ._validation import require_literal, require_match, require_strings
from .signing_profile import PROFILE_ARN_PATTERN, ISigningProfile

# ECR API model, SigningRepositoryFilterValue (lower-case repository name parts; '*' matches any sequence).
REPOSITORY_FILTER_PATTERN = re.compile(r"(?:[a-z0-9*]+(?:[._-][a-z0-9*]+)*/)*[a-z0-9*]+(?:[._-][a-z0-9*]+)*")
_FILTER_RULE = "a lower-case repository name pattern of 1 to 256 characters where '*' matches anything (e.g. 'payments/*')"


@dataclass(frozen=True, kw_only=True)
class SigningRule:
    """Sign images pushed to repositories matching ``repository_filters`` with ``profile``.

    :param profile: the signing profile, in the registry's region (any account).
    :param repository_filters: wildcard repository filters. :default: - every repository of the registry
    """

    profile: ISigningProfile
    repository_filters: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        filters = require_strings(self.repository_filters, "repository_filters")
        if len(filters) > _defaults.MAX_FILTERS_PER_RULE:
            raise ValueError(
                f"a signing rule takes at most {_defaults.MAX_FILTERS_PER_RULE} repository filters, got {len(filters)}; "
                "use wildcards ('team/*') to cover more repositories"
            )
        for value in filters:
            require_literal(value, "a repository filter", "pass a literal pattern such as 'payments/*'")
            if len(value) > 256:
                raise ValueError(f"a repository filter must be {_FILTER_RULE}, got {len(value)} characters")
            require_match(value, REPOSITORY_FILTER_PATTERN, "a repository filter", _FILTER_RULE)
        if len(set(filters)) != len(filters):
            raise ValueError(f"repository_filters has duplicates: {list(filters)}; list each filter once")
        object.__setattr__(self, "repository_filters", filters)
        arn = self.profile.signing_profile_arn
        if not Token.is_unresolved(arn) and not PROFILE_ARN_PATTERN.fullmatch(arn):
            raise ValueError(f"a signing rule needs a signing profile ARN (not a version ARN), got {arn!r}")


class RegistrySigningRules(Construct):
    """The registry's ECR managed-signing configuration: up to 10 rules of (profile, repository filters).

    ECR keeps one signing configuration per registry (account and region), and a deploy replaces
    it whole: declare this construct once per environment and add every rule to it. A second one for
    the same environment anywhere in the app is a synth error.
    """

    def __init__(self, scope: Construct, id: str, *, rules: Sequence[SigningRule] = ()) -> None:
        """
        :param rules: the signing rules; more can be added with :meth:`add_rule`.
            :default: - none yet (at least one is required by synth)
        """
        super().__init__(scope, id)
        self._rules: list[SigningRule] = []
        self._resource = ecr.CfnSigningConfiguration(self, "Resource", rules=lazy(self._render_rules))
        for rule in rules:
            self.add_rule(rule)
        add_validation(self, self._check)

    @property
    def rules(self) -> tuple[SigningRule, ...]:
        return tuple(self._rules)

    @property
    def registry_id(self) -> str:
        """The registry (account) id."""
        return self._resource.attr_registry_id

    def add_rule(self, rule: SigningRule) -> None:
        """Add a rule. Each rule whose filters match a pushed image produces one signature."""
        if not isinstance(rule, SigningRule):
            raise ValueError(f"add_rule takes a SigningRule(profile=..., repository_filters=[...]), got {rule!r}")
        if len(self._rules) >= _defaults.MAX_SIGNING_RULES:
            raise ValueError(
                f"registry signing rules {self.node.path} already hold {_defaults.MAX_SIGNING_RULES} rules, the ECR "
                "maximum; merge rules that use the same profile into one rule with several repository filters"
            )
        self._check_region(rule.profile)
        for existing in self._rules:
            if existing.profile is rule.profile and set(existing.repository_filters) == set(rule.repository_filters):
                raise ValueError(
                    f"registry signing rules {self.node.path} already hold this rule for "
                    f"{rule.profile.node.path} with filters {list(rule.repository_filters)}; add it once"
                )
        self._rules.append(rule)

    def _check_region(self, profile: ISigningProfile) -> None:
        registry_region, profile_region = Stack.of(self).region, profile.env.region
        same = same_value(registry_region, profile_region)
        if same is False:
            raise ValueError(
                f"signing profile {profile.node.path} is in region {profile_region} but the registry of "
                f"{self.node.path} is in {registry_region}; ECR managed signing cannot sign across regions: "
                f"use a profile in {registry_region}"
            )
        if same is None:
            Annotations.of(self).add_warning_v2(
                "signed-images:ProfileRegionUnknown",
                f"cannot check that signing profile {profile.node.path} is in the registry's region; "
                "give both stacks an explicit region",
            )

    def _render_rules(self) -> list[ecr.CfnSigningConfiguration.RuleProperty]:
        return [
            ecr.CfnSigningConfiguration.RuleProperty(
                signing_profile_arn=rule.profile.signing_profile_arn,
                repository_filters=[
                    ecr.CfnSigningConfiguration.RepositoryFilterProperty(
                        filter=value, filter_type=_defaults.REPOSITORY_FILTER_TYPE
                    )
                    for value in rule.repository_filters
                ]
                or None,
            )
            for rule in self._rules
        ]

    def _check(self) -> list[str]:
        errors = []
        if not self._rules:
            errors.append(f"registry signing rules {self.node.path} have no rule; add_rule() at least one")
        for other in find_in_app(self, RegistrySigningRules):
            if other is self:
                break
            if same_environment(other, self) is not False:
                errors.append(self._conflict(other.node.path, fix=f"declare it once and add_rule() to {other.node.path}"))
        # An L1 signing configuration outside any RegistrySigningRules fights this one too; it has no
        # check of its own, so every RegistrySigningRules of its environment reports it.
        ours = {rules._resource for rules in find_in_app(self, RegistrySigningRules)}
        for raw in find_in_app(self, ecr.CfnSigningConfiguration):
            if raw not in ours and same_environment(raw, self) is not False:
                errors.append(
                    self._conflict(raw.node.path, fix=f"declare it once and add_rule() to {self.node.path} instead of {raw.node.path}")
                )
        return errors

    def _conflict(self, other_path: str, *, fix: str) -> str:
        return (
            f"registry signing rules {self.node.path} and {other_path} both target {describe_environment(self)}; "
            f"ECR keeps one signing configuration per registry, so the second deploy would overwrite the first: {fix}"
        )
