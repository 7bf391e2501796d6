"""The report as Markdown: one section per question a security reviewer asks, then the trust-flow diagram."""

from __future__ import annotations

from .diagram import mermaid
from .facts import Facts
from .principals import Role
from .signing import Repository, SigningKey

TITLE = "# Signed images: security review"


def _cell(text: object) -> str:
    """A table cell: pipes escaped, newlines folded (Markdown tables are one line per row)."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or "-"


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render(facts: Facts) -> str:
    lines = [TITLE, "",
             (f"Generated {facts.generated.strftime('%Y-%m-%d %H:%M UTC')} from the cloud assembly "
              f"`{facts.assembly.root}` (templates, metadata and assets only; nothing was deployed or fetched)."), ""]
    lines += _table(["Stack", "Account/region", "Resources"],
                    [[s.name, s.environment, len(s.resources)] for s in facts.assembly.stacks])
    for section in (_who_can_sign, _repositories, _services, _policies, _break_glass, _nag):
        lines += section(facts)
    lines += ["## Trust flow", "", "CI -> key/profile -> registry -> hook -> service. Dashed: not protected.", "",
              "```mermaid", *mermaid(facts), "```", ""]
    return "\n".join(lines)


def _who_can_sign(facts: Facts) -> list[str]:
    lines = ["## Who can sign", "", "### Signing keys (KMS)", ""]
    if not facts.keys:
        lines += ["No KMS signing key in the assembly.", ""]
    for key in facts.keys:
        lines += _key(key)
    lines += ["### Signing profiles (AWS Signer)", ""]
    if not facts.profiles:
        lines += ["No AWS Signer signing profile in the assembly.", ""]
    for profile in facts.profiles:
        lines += [f"- {profile.label}: platform `{profile.platform}`, signature validity {profile.validity}"]
        lines += [f"  - {role.label} may call {actions}" for role, actions in profile.signers] or [
            "  - no role of the assembly may call signer:SignPayload or signer:StartSigningJob on it"]
    lines += [""] if facts.profiles else []
    lines += ["### Roles that sign or push signed images, and who can assume them", ""]
    rows = []
    for role in facts.signing_roles:
        trusted = "; ".join(", ".join(t.principals) for t in role.trusts) or "nobody (no Allow in the trust policy)"
        subjects = "; ".join(s for t in role.trusts for s in t.subjects) or "-"
        audiences = "; ".join(a for t in role.trusts for a in t.audiences) or "-"
        conditions = "; ".join(c for t in role.trusts for c in t.conditions if ":sub" not in c and ":aud" not in c)
        actions = ", ".join(sorted({a for g, _ in role.grants for a in g.actions}))
        unread = f" (not read: {', '.join(role.unread_policies)})" if role.unread_policies else ""
        rows.append([role.label, trusted, subjects, audiences, conditions or "-", actions + unread])
    lines += _table(["Role", "Assumed by", "OIDC `sub` patterns", "`aud`", "Other trust conditions",
                     "Signing/push actions"], rows) if rows else ["No role of the assembly can sign or push signed images.", ""]
    return lines


def _key(key: SigningKey) -> list[str]:
    aliases = ", ".join(f"`{a}`" for a in key.aliases) or "no alias"
    lines = [f"#### {key.label}", "", f"{aliases}; {key.key_spec}; {key.description or 'no description'}"
             + (" **(break-glass)**" if key.break_glass else ""), ""]
    lines.append("Key policy allows `kms:Sign` to:" if key.allows else "Key policy allows `kms:Sign` to nobody.")
    for statement in key.allows:
        conditions = f" when {'; '.join(statement.conditions)}" if statement.conditions else ""
        lines.append(f"- {', '.join(statement.principals)} ({statement.sid}){conditions}")
    lines += ["", "Explicit denies of `kms:Sign`:" if key.denies else "No explicit deny of `kms:Sign`."]
    for statement in key.denies:
        conditions = f" unless {'; '.join(statement.conditions)}" if statement.conditions else " (unconditional)"
        lines.append(f"- {statement.sid}: {', '.join(statement.principals)}{conditions}")
    lines.append("")
    if key.signers:
        lines += _table(["Role", "Can sign", "Allowed by"], [[s.role.label, s.verdict, s.via] for s in key.signers])
    else:
        lines += ["**Nobody in this assembly can sign with this key.**", ""]
    return lines


def _repositories(facts: Facts) -> list[str]:
    lines = ["## Repositories and ECR signing rules", ""]
    if facts.signing_rules:
        lines += _table(["Signing configuration", "Rule", "Repository filters", "Signing profile"],
                        [[f"`{r.config.logical_id}` in {r.config.stack.name} ({r.config.stack.environment})", r.index,
                          ", ".join(f"`{f}`" for f in r.filters) or "every repository of the registry",
                          r.profile_label] for r in facts.signing_rules])
    else:
        lines += ["No `AWS::ECR::SigningConfiguration`: nothing is signed on push by ECR managed signing.", ""]
    # ECR managed signing signs with the pusher's identity: a pusher without signer:SignPayload on the
    # rule's profile pushes images that stay unsigned.
    may_sign = {p.ref.key: {role.ref.key for role, _ in p.signers} for p in facts.profiles}

    def pusher(repo: Repository, role: Role) -> str:
        missing = [r for r in repo.rules if r.profile is not None and role.ref.key not in may_sign.get(r.profile.key, ())]
        return role.label + (" (**no signer:SignPayload on the profile: its pushes stay unsigned**)" if missing else "")

    rows = [[f"`{repo.name}`", f"`{repo.ref.logical_id}` in {repo.ref.stack.name}",
             "; ".join(f"rule {r.index} of `{r.config.logical_id}` -> {r.profile_label}" for r in repo.rules)
             or "**not signed on push**", ", ".join(pusher(repo, p) for p in repo.pushers) or "-"]
            for repo in facts.repositories]
    return lines + (_table(["Repository", "Resource", "Signed on push by", "Pushers"], rows) if rows
                    else ["No ECR repository in the assembly.", ""])


def _services(facts: Facts) -> list[str]:
    lines = ["## ECS services", "", "### Protected by the admission hook", ""]
    protected = [s for s in facts.services if s.protected]
    unprotected = [s for s in facts.services if not s.protected]
    lines += _table(["Service", "Cluster", "Stages", "Admission function", "Strategy", "Images"],
                    [[s.label, s.cluster, ", ".join(s.stages), "; ".join(h.target_label for h in s.admission_hooks),
                      s.strategy, "; ".join(s.images)] for s in protected]) if protected else ["None.", ""]
    lines += ["### NOT protected", ""]
    rows = []
    for service in unprotected:
        why = ("deployment controller " + service.controller + " (no ECS lifecycle hooks)"
               if service.controller != "ECS" else
               "hooks: " + "; ".join(f"{h.target_label} at {', '.join(h.stages)}" for h in service.hooks)
               if service.hooks else "no lifecycle hook")
        rows.append([service.label, service.cluster, why, "; ".join(service.images)])
    lines += _table(["Service", "Cluster", "Why", "Images"], rows) if rows else ["None: every ECS service is protected.", ""]
    return lines


def _policies(facts: Facts) -> list[str]:
    lines = ["## Admission policies", ""]
    if not facts.policies:
        return lines + ["No admission function (a Lambda whose code asset holds an admission policy) in the assembly.", ""]
    for policy in facts.policies:
        lines += [f"### {policy.label}", "", f"Read from `{policy.source}`.", ""]
        if policy.problem:
            lines += [f"**{policy.problem}**", ""]
            continue
        lines += [(f"failureMode `{policy.failure_mode}`, unavailableMode `{policy.unavailable_mode}`; "
                   "an image that matches no rule is rejected."), "", "Trusted signers:", ""]
        aliases = {k.ref.key: k.aliases for k in facts.keys}
        lines += _table(["Signer", "Kind", "Trusts", "State", "Break-glass"],
                        [[s.name, s.kind, "; ".join([*s.trusts, *(f"`{a}`" for t in s.targets for a in aliases.get(t.key, ()))]),
                          s.state, "yes" if s.break_glass else "no"] for s in policy.signers])
        lines += ["Rules:", ""]
        lines += _table(["Rule", "Images", "Requires", "Required annotations"],
                        [[r.name, "; ".join(r.images), r.requirement, "; ".join(r.annotations)] for r in policy.rules])
        lines += ["Exemptions:", ""]
        if policy.exemptions:
            lines += _table(["Images", "Digests", "Reason", "Expires", "Status"],
                            [[("; ".join(e.images)), "; ".join(e.digests) or "any", e.reason, e.expires,
                              "unreadable date" if e.expired is None else "EXPIRED (no longer exempt)" if e.expired
                              else "active"] for e in policy.exemptions])
        else:
            lines += ["None.", ""]
    return lines


def _break_glass(facts: Facts) -> list[str]:
    lines = ["## Break-glass path", ""]
    if not facts.break_glass:
        return lines + ["No break-glass key: no key is marked break-glass in a policy, description or tag.", ""]
    for entry in facts.break_glass:
        lines.append(f"- {entry.label}")
        lines += [f"  - marked by {why}" for why in entry.why]
        lines += [f"  - trusted by the admission policy of {label}" for label in entry.trusted_by]
        if entry.key is None:
            lines.append("  - the key is not in this assembly (a deploy-time value): who can sign is not visible here")
        elif entry.key.signers:
            lines += [f"  - can sign: {s.role.label} ({s.verdict})" for s in entry.key.signers]
        else:
            denies = ", ".join(d.sid for d in entry.key.denies)
            lines.append(f"  - nobody in this assembly can sign with it{f' (denied by {denies})' if denies else ''}")
    return lines + [""]


def _nag(facts: Facts) -> list[str]:
    lines = ["## cdk-nag acknowledgements", ""]
    rows = [[a.stack, f"`{a.resource}`", f"`{a.rule}`", a.reason or "**NO REASON GIVEN**",
             " and ".join({"template": "template metadata", "code": "in code (Validations.acknowledge)"}[w]
                          for w in a.where)]
            for a in sorted(facts.acknowledgements, key=lambda a: (a.stack, a.resource, a.rule))]
    lines += _table(["Stack", "Resource", "Rule", "Reason", "Recorded in"], rows) if rows else ["None.", ""]
    if facts.findings:
        lines += ["Unacknowledged findings in the validation report:", ""] + [f"- {f}" for f in facts.findings] + [""]
    return lines
