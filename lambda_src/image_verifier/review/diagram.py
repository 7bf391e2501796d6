"""The trust flow as a Mermaid flowchart: CI role -> key/profile -> repository -> admission hook -> service.

Node ids are generated (``n1``, ``n2``...), so no logical id or name can break the syntax; labels are
quoted with Mermaid's entity for ``"``. Services without an admission hook are drawn dashed.
"""

from __future__ import annotations

import fnmatch
import re

from .facts import Facts
from .values import ResourceRef


class _Graph:
    def __init__(self) -> None:
        self.ids: dict[object, str] = {}
        self.lines: list[str] = []
        self.edges: set[str] = set()

    def node(self, key: object, label: str, shape: str = "box") -> str:
        if key not in self.ids:
            node_id = f"n{len(self.ids) + 1}"
            self.ids[key] = node_id
            text = _label(label)
            opening, closing = {"box": ("[", "]"), "round": ("(", ")"), "db": ("[(", ")]"),
                                "hex": ("{{", "}}")}[shape]
            self.lines.append(f'    {node_id}{opening}"{text}"{closing}')
        return self.ids[key]

    def edge(self, source: str, target: str, label: str, dashed: bool = False) -> None:
        arrow = "-.->" if dashed else "-->"
        line = f'    {source} {arrow}|"{_label(label)}"| {target}'
        if line not in self.edges:
            self.edges.add(line)
            self.lines.append(line)


def _label(text: str) -> str:
    """Template text inside a quoted Mermaid label: no brackets, quotes, pipes or line breaks survive."""
    return re.sub(r"[`\[\]{}()<>|\r\n]", "", text).replace('"', "#quot;")


def _short(ref: ResourceRef, name_key: str) -> str:
    name = ref.properties.get(name_key)
    return f"{ref.logical_id} {name}" if isinstance(name, str) else ref.logical_id


def _repo_in_image(name: str, image: str) -> bool:
    path = image.split("/", 1)[1] if "/" in image else image
    path = re.split(r"[:@]", path, maxsplit=1)[0]
    return path == name or fnmatch.fnmatchcase(name, path.replace("**", "*"))


def mermaid(facts: Facts) -> list[str]:
    graph = _Graph()
    for role in facts.signing_roles:
        graph.node(role.ref.key, f"CI: {_short(role.ref, 'RoleName')}", "round")
    for key in facts.keys:
        node = graph.node(key.ref.key, f"key: {key.aliases[0] if key.aliases else key.ref.logical_id}"
                          + (" break-glass" if key.break_glass else ""), "hex")
        for signer in key.signers:
            if signer.role.ref.key in graph.ids and not signer.verdict.startswith("no"):
                graph.edge(graph.ids[signer.role.ref.key], node, "kms:Sign" + ("?" if signer.verdict != "yes" else ""))
    for profile in facts.profiles:
        node = graph.node(profile.ref.key, f"profile: {_short(profile.ref, 'ProfileName')}", "hex")
        for role, actions in profile.signers:
            graph.edge(graph.node(role.ref.key, f"CI: {_short(role.ref, 'RoleName')}", "round"), node, actions)
    for repo in facts.repositories:
        node = graph.node(repo.ref.key, f"repo: {repo.name}", "db")
        for role in repo.pushers:
            if role.ref.key in graph.ids:
                graph.edge(graph.ids[role.ref.key], node, "push")
        for rule in repo.rules:
            if rule.profile is not None:
                graph.edge(graph.node(rule.profile.key, f"profile: {_short(rule.profile, 'ProfileName')}", "hex"),
                           node, f"signs on push, rule {rule.index}")
    for policy in facts.policies:
        hook = graph.node(policy.function.key, f"admission hook: {policy.function.logical_id}")
        for signer in policy.signers:
            for target in signer.targets:
                if target.key in graph.ids:
                    state = f", {signer.state}" if signer.state != "-" else ""
                    graph.edge(graph.ids[target.key], hook, f"trusted{state}")
        images = [i for rule in policy.rules for i in rule.images]
        for repo in facts.repositories:
            if any(_repo_in_image(repo.name, image) for image in images):
                graph.edge(graph.ids[repo.ref.key], hook, "images checked")
    unprotected = []
    for service in facts.services:
        node = graph.node(service.ref.key, f"service: {service.ref.logical_id}")
        for hook in service.admission_hooks:
            if hook.admission is not None:
                graph.edge(graph.node(hook.admission.key, f"admission hook: {hook.admission.logical_id}"), node,
                           ", ".join(hook.stages))
        if not service.protected:
            unprotected.append(node)
            for repo in facts.repositories:
                if any(_repo_in_image(repo.name, image.split(": ", 1)[-1]) for image in service.images):
                    graph.edge(graph.ids[repo.ref.key], node, "no hook", dashed=True)
    lines = ["flowchart LR", *graph.lines]
    if unprotected:
        lines += ["    classDef unprotected stroke-dasharray: 5 5", f"    class {','.join(unprotected)} unprotected"]
    return lines
