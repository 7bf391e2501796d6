"""Every fact the report shows, read once from the assembly (the renderers only format them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .assembly import Assembly
from .nag import Acknowledgement, read_acknowledgements, unacknowledged_findings
from .policy import AdmissionPolicy, read_policies
from .principals import Role, read_roles
from .services import Service, read_services
from .signing import (
    Profile,
    Repository,
    SigningKey,
    SigningRule,
    read_keys,
    read_profiles,
    read_repositories,
    read_signing_rules,
)
from .values import Resolver


@dataclass(frozen=True, kw_only=True)
class BreakGlassKey:
    key: SigningKey | None  # None when the policy trusts a break-glass key that is not in the assembly
    label: str
    why: tuple[str, ...]
    trusted_by: tuple[str, ...]  # admission policies (function labels) that trust it


@dataclass(frozen=True, kw_only=True)
class Facts:
    assembly: Assembly
    generated: datetime
    roles: tuple[Role, ...]
    keys: tuple[SigningKey, ...]
    profiles: tuple[Profile, ...]
    signing_rules: tuple[SigningRule, ...]
    repositories: tuple[Repository, ...]
    policies: tuple[AdmissionPolicy, ...]
    services: tuple[Service, ...]
    break_glass: tuple[BreakGlassKey, ...]
    acknowledgements: tuple[Acknowledgement, ...]
    findings: tuple[str, ...]

    @property
    def signing_roles(self) -> tuple[Role, ...]:
        """Roles that can sign or push to a signed repository: the ones a reviewer must look at."""
        signers = {s.role.ref.key for k in self.keys for s in k.signers}
        signers |= {r.ref.key for p in self.profiles for r, _ in p.signers}
        signers |= {r.ref.key for repo in self.repositories if repo.rules for r in repo.pushers}
        return tuple(r for r in self.roles if r.ref.key in signers)


def gather(assembly: Assembly, now: datetime) -> Facts:
    resolver = Resolver(assembly)
    roles = read_roles(assembly, resolver)
    keys = read_keys(assembly, resolver, roles)
    rules = read_signing_rules(assembly, resolver)
    policies = read_policies(assembly, resolver, now)
    admission = {f.key for p in policies for f in p.functions}
    return Facts(
        assembly=assembly, generated=now, roles=tuple(roles), keys=tuple(keys),
        profiles=tuple(read_profiles(assembly, resolver, roles)), signing_rules=tuple(rules),
        repositories=tuple(read_repositories(assembly, resolver, rules, roles)), policies=tuple(policies),
        services=tuple(read_services(assembly, resolver, admission)),
        break_glass=tuple(_break_glass(keys, policies)),
        acknowledgements=tuple(read_acknowledgements(assembly)),
        findings=tuple(unacknowledged_findings(assembly)),
    )


def _break_glass(keys: list[SigningKey], policies: list[AdmissionPolicy]) -> list[BreakGlassKey]:
    """Keys marked break-glass by a policy (``breakGlass: true``) or by the key's own description/tags."""
    by_key = {k.ref.key: k for k in keys}
    found: dict[object, tuple[SigningKey | None, str, list[str], list[str]]] = {}
    for key in keys:
        if key.break_glass:
            found[key.ref.key] = (key, key.label, [key.break_glass], [])
    for policy in policies:
        for signer in policy.signers:
            if not signer.break_glass:
                continue
            why = f"policy of {policy.label}: signer `{signer.name}` has breakGlass: true"
            targets = [t for t in signer.targets if t.key in by_key] or [None]
            for target in targets:
                ident: object = target.key if target else ("unresolved", signer.trusts)
                key = by_key.get(target.key) if target else None
                label = key.label if key else " ".join(signer.trusts)
                entry = found.setdefault(ident, (key, label, [], []))
                entry[2].append(why)
                entry[3].append(policy.label)
    return [BreakGlassKey(key=k, label=label, why=tuple(why), trusted_by=tuple(dict.fromkeys(trusted)))
            for k, label, why, trusted in found.values()]
