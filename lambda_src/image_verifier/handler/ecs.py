"""What a service revision will run: its container images and the platform of its tasks.

`DescribeServiceRevisions` gives `containerImages[{containerName, image, imageDigest}]` and the task
definition ARN; at PRE_SCALE_UP `imageDigest` may still be empty (ECS resolves tags from the first
task it starts), so an empty digest is left to the verifier, which resolves the tag itself.
The task definition is what the tasks run, so every one of its containers is verified, with the
digest ECS lists for it where there is one; a container ECS lists that the task definition does
not declare is verified too.
`DescribeTaskDefinition` gives `runtimePlatform` (absent means linux/amd64); a revision's
`overrides.runtimePlatform.cpuArchitecture`, which ECS sets when tasks really run on another
architecture than the task definition says, wins. Task definitions are immutable, so their
platform is cached for the life of the function.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from ..errors import AwsUnavailableError
from ..platform import Platform

MAX_CONTAINERS = 50  # ECS allows 10 containers per task definition; more is a malformed answer
MAX_CACHED_TASK_DEFINITIONS = 256
_ARCHITECTURES = {"X86_64": "amd64", "ARM64": "arm64"}
DEFAULT_PLATFORM = Platform(os="linux", architecture="amd64")


class EcsClient(Protocol):
    """The two boto3 ECS calls the handler makes."""

    def describe_service_revisions(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def describe_task_definition(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class ContainerImage:
    container_name: str
    image: str
    digest: str | None  # None when ECS has not resolved the tag yet


@dataclass(frozen=True, kw_only=True)
class Revision:
    arn: str
    task_definition: str
    platform: Platform
    images: tuple[ContainerImage, ...]


class RevisionReader:
    """Reads service revisions through an ECS client per region (clients are built by the caller)."""

    def __init__(self, ecs_for_region: Callable[[str], EcsClient]) -> None:
        self._ecs_for_region = ecs_for_region
        self._task_definitions: OrderedDict[str, tuple[Platform, tuple[ContainerImage, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, revision_arn: str, region: str) -> Revision:
        ecs = self._ecs_for_region(region)
        answer = _call(lambda: ecs.describe_service_revisions(serviceRevisionArns=[revision_arn]),
                       "DescribeServiceRevisions")
        revisions = [r for r in answer.get("serviceRevisions") or () if r.get("serviceRevisionArn") == revision_arn]
        if not revisions:
            failures = "; ".join(f"{f.get('reason')}: {f.get('detail') or f.get('arn')}"
                                 for f in answer.get("failures") or ())
            raise AwsUnavailableError(f"ECS did not describe {revision_arn}" + (f" ({failures})" if failures else ""))
        revision = revisions[0]
        task_definition = revision.get("taskDefinition")
        if not isinstance(task_definition, str) or not task_definition:
            raise AwsUnavailableError(f"ECS described {revision_arn} without a task definition")
        platform, declared = self._task_definition(ecs, task_definition)
        override = ((revision.get("overrides") or {}).get("runtimePlatform") or {}).get("cpuArchitecture")
        if override:
            platform = Platform(os=platform.os, architecture=_architecture(override))
        images = _every_container(declared, _container_images(revision.get("containerImages") or ()))
        if not images:
            raise AwsUnavailableError(f"neither {revision_arn} nor {task_definition} lists a container image")
        return Revision(arn=revision_arn, task_definition=task_definition, platform=platform, images=images)

    def _task_definition(self, ecs: EcsClient, arn: str) -> tuple[Platform, tuple[ContainerImage, ...]]:
        with self._lock:
            if arn in self._task_definitions:
                self._task_definitions.move_to_end(arn)
                return self._task_definitions[arn]
        answer = _call(lambda: ecs.describe_task_definition(taskDefinition=arn), "DescribeTaskDefinition")
        definition = answer.get("taskDefinition") or {}
        runtime = definition.get("runtimePlatform") or {}
        family = runtime.get("operatingSystemFamily") or "LINUX"
        platform = Platform(os="windows" if family.startswith("WINDOWS") else "linux",
                            architecture=_architecture(runtime.get("cpuArchitecture") or "X86_64"))
        # The task definition's own images: what the tasks will run, listed by ECS or not.
        declared = _container_images(
            {"containerName": c.get("name", ""), "image": c.get("image")} for c in definition.get("containerDefinitions") or ()
        )
        with self._lock:
            self._task_definitions[arn] = (platform, declared)
            while len(self._task_definitions) > MAX_CACHED_TASK_DEFINITIONS:
                self._task_definitions.popitem(last=False)
        return platform, declared


def _architecture(value: str) -> str:
    if value not in _ARCHITECTURES:
        raise AwsUnavailableError(f"unknown cpuArchitecture {value!r} (expected X86_64 or ARM64)")
    return _ARCHITECTURES[value]


def _every_container(declared: tuple[ContainerImage, ...],
                     listed: tuple[ContainerImage, ...]) -> tuple[ContainerImage, ...]:
    """The task definition's containers in its order, each with ECS's digest where ECS lists the
    same container and image; then whatever ECS lists beyond them."""
    images: list[ContainerImage] = []
    for container in declared:
        same = [i for i in listed if (i.container_name, i.image) == (container.container_name, container.image)]
        images.append(same[0] if same else container)
    images += [i for i in listed if i not in images]
    if len(images) > MAX_CONTAINERS:
        raise AwsUnavailableError(f"ECS listed more than {MAX_CONTAINERS} containers")
    return tuple(images)


def _container_images(items: Any) -> tuple[ContainerImage, ...]:
    images = []
    for item in items:
        image = item.get("image")
        if not isinstance(image, str) or not image:
            raise AwsUnavailableError(f"ECS listed container {item.get('containerName')!r} without an image")
        images.append(ContainerImage(container_name=str(item.get("containerName") or ""), image=image,
                                     digest=item.get("imageDigest") or None))
        if len(images) > MAX_CONTAINERS:
            raise AwsUnavailableError(f"ECS listed more than {MAX_CONTAINERS} containers")
    return tuple(images)


def _call(call: Callable[[], Mapping[str, Any]], operation: str) -> Mapping[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsUnavailableError(f"ECS {operation} failed: {error.get('Code')}: {error.get('Message')}") from exc
    except BotoCoreError as exc:
        raise AwsUnavailableError(f"ECS {operation} failed: {exc}") from exc
