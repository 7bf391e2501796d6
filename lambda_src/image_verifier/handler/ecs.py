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

Every field read here is read strictly (`_shape`): a field of the wrong type or with an unknown
value raises `MalformedAnswerError` naming the field, and the handler answers FAILED in every
mode, since nothing is known of what will run. Fields we do not read are ignored (AWS adds
fields). How AWS errors are judged is in `aws_errors`.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from ..errors import AwsUnavailableError
from ..platform import Platform
from ..reference import is_digest
from . import _shape
from ..aws_errors import AwsRefusedError, MalformedAnswerError, judge_aws_error

MAX_CONTAINERS = 50  # ECS allows 10 containers per task definition; more is a malformed answer
MAX_CACHED_TASK_DEFINITIONS = 256
MAX_IMAGE_LENGTH = 4096  # an image reference is at most 2048 characters (reference.MAX_REFERENCE_LENGTH)
MAX_NAME_LENGTH = 255  # ECS container names
MAX_ARN_LENGTH = 2048
MAX_FAILURES = 100  # we ask for one revision; ECS reports at most one failure per ARN asked
_ARCHITECTURES = {"X86_64": "amd64", "ARM64": "arm64"}
# ECS's OSFamily values: LINUX and WINDOWS_SERVER_<version>_<FULL|CORE> (new versions appear over time).
_OS_FAMILY = re.compile(r"LINUX|WINDOWS_SERVER_[0-9A-Z]{2,8}_(?:FULL|CORE)")
_TASK_DEFINITION_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:ecs:[a-z0-9-]+:[0-9]{12}:task-definition/[A-Za-z0-9_-]{1,255}:[0-9]{1,10}")
RETRYABLE_FAILURES = frozenset({"MISSING"})  # a revision ECS just named may not be readable yet
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
        """The revision, or `AwsUnavailableError` (ask again later), `AwsRefusedError` or
        `MalformedAnswerError` (refuse now)."""
        ecs = self._ecs_for_region(region)
        call = "ECS DescribeServiceRevisions"
        answer = _shape.mapping(_call(lambda: ecs.describe_service_revisions(serviceRevisionArns=[revision_arn]), call),
                                f"the {call} answer", MalformedAnswerError)
        revision = _the_revision(answer, revision_arn, call)
        task_definition = _shape.string(revision.get("taskDefinition"), f"{call}: serviceRevisions[0].taskDefinition",
                                        MalformedAnswerError, max_length=MAX_ARN_LENGTH)
        if not _TASK_DEFINITION_ARN.fullmatch(task_definition):
            raise MalformedAnswerError(f"{call}: serviceRevisions[0].taskDefinition is not a task-definition ARN, "
                                       f"{_shape.got(task_definition)}")
        platform, declared = self._task_definition(ecs, task_definition)
        override = _override_architecture(revision, f"{call}: serviceRevisions[0]")
        if override:
            platform = Platform(os=platform.os, architecture=override)
        listed = _shape.array(revision.get("containerImages", []), f"{call}: serviceRevisions[0].containerImages",
                              MalformedAnswerError, max_items=MAX_CONTAINERS)
        images = _every_container(declared, tuple(
            _listed_image(item, f"{call}: serviceRevisions[0].containerImages[{n}]") for n, item in enumerate(listed)))
        return Revision(arn=revision_arn, task_definition=task_definition, platform=platform, images=images)

    def _task_definition(self, ecs: EcsClient, arn: str) -> tuple[Platform, tuple[ContainerImage, ...]]:
        with self._lock:
            if arn in self._task_definitions:
                self._task_definitions.move_to_end(arn)
                return self._task_definitions[arn]
        call = "ECS DescribeTaskDefinition"
        answer = _shape.mapping(_call(lambda: ecs.describe_task_definition(taskDefinition=arn), call),
                                f"the {call} answer", MalformedAnswerError)
        parsed = _parse_task_definition(answer, arn, call)
        with self._lock:  # only a well-formed answer is remembered
            self._task_definitions[arn] = parsed
            while len(self._task_definitions) > MAX_CACHED_TASK_DEFINITIONS:
                self._task_definitions.popitem(last=False)
        return parsed


def _the_revision(answer: Mapping[str, Any], arn: str, call: str) -> Mapping[str, Any]:
    """The one revision we asked for; a failure ECS reports for it is judged here."""
    revisions = _shape.array(answer.get("serviceRevisions", []), f"{call}: serviceRevisions", MalformedAnswerError,
                             max_items=1)
    failures = _shape.array(answer.get("failures", []), f"{call}: failures", MalformedAnswerError,
                            max_items=MAX_FAILURES)
    if revisions:
        revision = _shape.mapping(revisions[0], f"{call}: serviceRevisions[0]", MalformedAnswerError)
        described = revision.get("serviceRevisionArn")
        if described != arn:
            raise MalformedAnswerError(f"{call} described another revision than {arn}: "
                                       f"serviceRevisions[0].serviceRevisionArn {_shape.got(described)}")
        return revision
    reasons = []
    for n, item in enumerate(failures):
        failure = _shape.mapping(item, f"{call}: failures[{n}]", MalformedAnswerError)
        reason = _shape.optional_string(failure, "reason", f"{call}: failures[{n}]", MalformedAnswerError,
                                        max_length=MAX_ARN_LENGTH)
        detail = _shape.optional_string(failure, "detail", f"{call}: failures[{n}]", MalformedAnswerError,
                                        max_length=MAX_ARN_LENGTH)
        reasons.append((reason, f"{reason}: {detail}" if detail else str(reason)))
    if not reasons:
        raise MalformedAnswerError(f"{call} neither described {arn} nor reported a failure for it")
    said = f"ECS did not describe {arn} ({'; '.join(text for _, text in reasons)})"
    if all(reason in RETRYABLE_FAILURES for reason, _ in reasons):
        raise AwsUnavailableError(said)
    raise AwsRefusedError(said)


def _parse_task_definition(answer: Mapping[str, Any], arn: str, call: str) -> tuple[Platform, tuple[ContainerImage, ...]]:
    definition = _shape.mapping(answer.get("taskDefinition"), f"{call}: taskDefinition", MalformedAnswerError)
    described = definition.get("taskDefinitionArn")
    if described is not None and described != arn:
        raise MalformedAnswerError(f"{call} described another task definition than {arn}: "
                                   f"taskDefinitionArn {_shape.got(described)}")
    runtime = definition.get("runtimePlatform")
    runtime = {} if runtime is None else _shape.mapping(runtime, f"{call}: taskDefinition.runtimePlatform",
                                                        MalformedAnswerError)
    where = f"{call}: taskDefinition.runtimePlatform"
    family = _shape.optional_string(runtime, "operatingSystemFamily", where, MalformedAnswerError,
                                    max_length=64) or "LINUX"
    if not _OS_FAMILY.fullmatch(family):
        raise MalformedAnswerError(f"{where}.operatingSystemFamily is not an ECS operating system family (LINUX, "
                                   f"WINDOWS_SERVER_..._FULL|CORE), {_shape.got(family)}")
    architecture = _architecture(runtime, f"{where}.cpuArchitecture") or "amd64"
    platform = Platform(os="windows" if family.startswith("WINDOWS") else "linux", architecture=architecture)
    # The task definition's own images: what the tasks will run, listed by ECS or not.
    containers = _shape.array(definition.get("containerDefinitions"), f"{call}: taskDefinition.containerDefinitions",
                              MalformedAnswerError, max_items=MAX_CONTAINERS)
    if not containers:
        raise MalformedAnswerError(f"{call}: taskDefinition.containerDefinitions lists no container")
    declared = []
    for n, item in enumerate(containers):
        path = f"{call}: taskDefinition.containerDefinitions[{n}]"
        container = _shape.mapping(item, path, MalformedAnswerError)
        declared.append(ContainerImage(
            container_name=_shape.string(container.get("name"), f"{path}.name", MalformedAnswerError,
                                         max_length=MAX_NAME_LENGTH),
            image=_shape.string(container.get("image"), f"{path}.image", MalformedAnswerError,
                                max_length=MAX_IMAGE_LENGTH),
            digest=None))
    return platform, tuple(declared)


def _override_architecture(revision: Mapping[str, Any], path: str) -> str | None:
    overrides = revision.get("overrides")
    if overrides is None:
        return None
    overrides = _shape.mapping(overrides, f"{path}.overrides", MalformedAnswerError)
    runtime = overrides.get("runtimePlatform")
    if runtime is None:
        return None
    runtime = _shape.mapping(runtime, f"{path}.overrides.runtimePlatform", MalformedAnswerError)
    return _architecture(runtime, f"{path}.overrides.runtimePlatform.cpuArchitecture")


def _architecture(runtime: Mapping[str, Any], path: str) -> str | None:
    value = runtime.get("cpuArchitecture")
    if value is None:
        return None
    if not isinstance(value, str) or value not in _ARCHITECTURES:
        raise MalformedAnswerError(f"{path} must be X86_64 or ARM64, {_shape.got(value)}")
    return _ARCHITECTURES[value]


def _listed_image(item: Any, path: str) -> ContainerImage:
    entry = _shape.mapping(item, path, MalformedAnswerError)
    name = entry.get("containerName")
    digest = _shape.optional_string(entry, "imageDigest", path, MalformedAnswerError, max_length=200)
    if digest is not None and not is_digest(digest):
        raise MalformedAnswerError(f"{path}.imageDigest must be a sha256:/sha512: digest, {_shape.got(digest)}")
    return ContainerImage(
        container_name="" if name is None else _shape.string(name, f"{path}.containerName", MalformedAnswerError,
                                                             max_length=MAX_NAME_LENGTH, empty=True),
        image=_shape.string(entry.get("image"), f"{path}.image", MalformedAnswerError, max_length=MAX_IMAGE_LENGTH),
        digest=digest)


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
        raise MalformedAnswerError(f"ECS listed more than {MAX_CONTAINERS} containers")
    return tuple(images)


def _call(call: Callable[[], Any], operation: str) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except (ClientError, BotoCoreError) as exc:
        raise judge_aws_error(exc, operation) from exc
