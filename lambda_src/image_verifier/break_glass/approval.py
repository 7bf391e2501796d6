"""The two-person rule of break-glass signing, as a pure module: no clock, no AWS, no I/O.

A request names one image by digest, a reason and a ticket, and is made by an AWS-authenticated
caller (the function URL's request context, never a name typed in a request). It is approved when
``REQUIRED_APPROVALS`` distinct people, none of them the requester, approved it before it expired,
and nobody rejected it: a rejection wins over any number of approvals. Every step returns a new
``ApprovalState``; the state travels in the Step Functions execution, so its history holds every
request, approval and rejection.

Who is a person: for an assumed-role session, the session name (IAM Identity Center sets it to the
user's name; a role assumed some other way must pin it, see docs/constructs/break-glass-signing.md);
for an IAM user, the user name. Two sessions of one person through two roles are one person.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ImageVerifierError, InvalidReferenceError
from ..reference import ImageReference

REQUIRED_APPROVALS = 2  # "two people": the minimum, and the default of the construct
MAX_REASON_CHARS = 1000  # a reason is a sentence or two; the whole state must fit a task output (256 KiB)
MAX_TICKET_CHARS = 128
MAX_COMMENT_CHARS = 500
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,80}")  # a Step Functions execution name

_ASSUMED_ROLE = re.compile(r"arn:(aws[a-z-]*):sts::([0-9]{12}):assumed-role/([\w+=,.@-]{1,64})/([\w+=,.@-]{2,64})")
_USER = re.compile(r"arn:(aws[a-z-]*):iam::([0-9]{12}):user/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})")
_ROLE = re.compile(r"arn:(aws[a-z-]*):iam::([0-9]{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})")


class ApprovalError(ImageVerifierError):
    """A request, approval or rejection was refused; the message says why and what to do."""


class Status(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, kw_only=True)
class Caller:
    """An AWS-authenticated identity: its ARN, account, role or user name, and the person behind it."""

    arn: str
    account: str
    kind: str  # "assumed-role" or "user"
    principal: str  # the role name or the user name
    person: str  # the session name, or the user name

    @classmethod
    def from_arn(cls, arn: str) -> Caller:
        """Parse the caller ARN AWS authenticated (``requestContext.authorizer.iam.userArn``)."""
        if not isinstance(arn, str):
            raise ApprovalError(f"the caller ARN must be a string, got {arn!r}")
        if match := _ASSUMED_ROLE.fullmatch(arn):
            return cls(arn=arn, account=match[2], kind="assumed-role", principal=match[3], person=match[4])
        if match := _USER.fullmatch(arn):
            return cls(arn=arn, account=match[2], kind="user", principal=match[3], person=match[3])
        raise ApprovalError(
            f"caller {arn!r} is neither an assumed-role session nor an IAM user: break-glass requests and approvals "
            "are made by people through their approver or requester role (the account root is never one)"
        )

    def is_one_of(self, identities: Iterable[str]) -> bool:
        """True when this caller is one of ``identities`` (role or user ARNs, as the construct names them).

        An assumed-role ARN carries no role path, so a role matches by account and role name.
        """
        for identity in identities:
            role, user = _ROLE.fullmatch(identity), _USER.fullmatch(identity)
            if self.kind == "assumed-role" and role and (role[2], role[3]) == (self.account, self.principal):
                return True
            if self.kind == "user" and user and (user[2], user[3]) == (self.account, self.principal):
                return True
        return False

    def to_json(self) -> dict[str, str]:
        return {"arn": self.arn, "person": self.person}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Caller:
        return cls.from_arn(raw.get("arn"))


@dataclass(frozen=True, kw_only=True)
class Vote:
    """One approval or rejection: who, when (epoch seconds), and an optional comment."""

    caller: Caller
    at: int
    comment: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"caller": self.caller.to_json(), "at": self.at, "comment": self.comment}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Vote:
        return cls(caller=Caller.from_json(raw["caller"]), at=int(raw["at"]), comment=str(raw.get("comment", "")))


@dataclass(frozen=True, kw_only=True)
class BreakGlassRequest:
    """What is asked: one image by digest, why, the ticket, who asked, and until when approvals count."""

    request_id: str
    image: str
    reason: str
    ticket: str
    requester: Caller
    requested_at: int
    expires_at: int

    @classmethod
    def create(cls, *, request_id: str, image: str, reason: str, ticket: str, requester: Caller, now: int,
               timeout_seconds: int) -> BreakGlassRequest:
        """Check a new request; ``now`` and ``timeout_seconds`` fix when it expires."""
        if not REQUEST_ID_PATTERN.fullmatch(request_id or ""):
            raise ApprovalError(f"request id {request_id!r} must be 1-80 letters, digits, '-' or '_'")
        reference = _image_by_digest(image)
        reason, ticket = _text(reason, "reason", MAX_REASON_CHARS), _text(ticket, "ticket", MAX_TICKET_CHARS)
        if timeout_seconds < 60:
            raise ApprovalError(f"the approval time limit must be at least 60 seconds, got {timeout_seconds}")
        return cls(request_id=request_id, image=str(reference), reason=reason, ticket=ticket, requester=requester,
                   requested_at=now, expires_at=now + timeout_seconds)

    def to_json(self) -> dict[str, Any]:
        return {"requestId": self.request_id, "image": self.image, "reason": self.reason, "ticket": self.ticket,
                "requester": self.requester.to_json(), "requestedAt": self.requested_at, "expiresAt": self.expires_at}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> BreakGlassRequest:
        return cls(request_id=str(raw["requestId"]), image=str(_image_by_digest(raw["image"])),
                   reason=str(raw["reason"]), ticket=str(raw["ticket"]),
                   requester=Caller.from_json(raw["requester"]), requested_at=int(raw["requestedAt"]),
                   expires_at=int(raw["expiresAt"]))


@dataclass(frozen=True, kw_only=True)
class ApprovalState:
    """A request and the votes on it so far. Build with :meth:`new`, then :meth:`approve`/:meth:`reject`."""

    request: BreakGlassRequest
    approvals: tuple[Vote, ...] = ()
    rejection: Vote | None = None
    required_approvals: int = REQUIRED_APPROVALS

    @classmethod
    def new(cls, request: BreakGlassRequest, *, required_approvals: int = REQUIRED_APPROVALS) -> ApprovalState:
        if required_approvals < REQUIRED_APPROVALS:
            raise ApprovalError(f"a break-glass signature needs at least {REQUIRED_APPROVALS} approvals, "
                                f"got required_approvals={required_approvals}")
        return cls(request=request, required_approvals=required_approvals)

    def status(self, now: int) -> Status:
        """Rejected beats everything; then approved (enough approvals, all before expiry); then expired."""
        if self.rejection is not None:
            return Status.REJECTED
        if len(self._valid_approvers()) >= self.required_approvals:
            return Status.APPROVED
        if now >= self.request.expires_at:
            return Status.EXPIRED
        return Status.PENDING

    def remaining_seconds(self, now: int) -> int:
        """Whole seconds left to approve (at least 1: Step Functions refuses a zero timeout)."""
        return max(1, math.ceil(self.request.expires_at - now))

    def approve(self, caller: Caller, *, now: int, approvers: Iterable[str], comment: str = "") -> ApprovalState:
        """Add ``caller``'s approval; refused for the requester, a second vote of one person, or a non-approver."""
        self._require_pending(now)
        self._require_approver(caller, approvers, "approve")
        if caller.person == self.request.requester.person or caller.arn == self.request.requester.arn:
            raise ApprovalError(
                f"{caller.arn} requested {self.request.request_id} and cannot approve it: two other people must"
            )
        for vote in self.approvals:
            if vote.caller.person == caller.person:
                raise ApprovalError(
                    f"{caller.person} already approved {self.request.request_id} (as {vote.caller.arn}); "
                    "a second approval must come from a different person"
                )
        vote = Vote(caller=caller, at=now, comment=_text(comment, "comment", MAX_COMMENT_CHARS, required=False))
        return replace(self, approvals=self.approvals + (vote,))

    def reject(self, caller: Caller, *, now: int, approvers: Iterable[str], comment: str = "") -> ApprovalState:
        """Reject (an approver) or withdraw (the requester) the request; the rejection is final."""
        self._require_pending(now)
        if caller.arn != self.request.requester.arn:
            self._require_approver(caller, approvers, "reject")
        vote = Vote(caller=caller, at=now, comment=_text(comment, "comment", MAX_COMMENT_CHARS, required=False))
        return replace(self, rejection=vote)

    def check_approved(self, approvers: Iterable[str]) -> None:
        """Re-judge the state from scratch before signing: raise unless it is approved as the rules say."""
        approvers = tuple(approvers)
        if self.rejection is not None:
            raise ApprovalError(f"{self.request.request_id} was rejected by {self.rejection.caller.arn}")
        people = set()
        for vote in self.approvals:
            if not vote.caller.is_one_of(approvers):
                raise ApprovalError(f"{vote.caller.arn} approved {self.request.request_id} but is no approver")
            if vote.caller.person == self.request.requester.person:
                raise ApprovalError(f"the requester {vote.caller.arn} approved {self.request.request_id}")
            if vote.at >= self.request.expires_at:
                raise ApprovalError(f"{vote.caller.arn} approved {self.request.request_id} after it expired")
            people.add(vote.caller.person)
        if len(people) < self.required_approvals:
            raise ApprovalError(f"{self.request.request_id} has {len(people)} distinct approvals, "
                                f"{self.required_approvals} are required")

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request.to_json(), "approvals": [v.to_json() for v in self.approvals],
                "rejection": self.rejection.to_json() if self.rejection else None,
                "requiredApprovals": self.required_approvals}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ApprovalState:
        """Read a state back; a malformed one is an ApprovalError, never a KeyError."""
        try:
            rejection = raw.get("rejection")
            return cls(request=BreakGlassRequest.from_json(raw["request"]),
                       approvals=tuple(Vote.from_json(v) for v in raw.get("approvals", [])),
                       rejection=Vote.from_json(rejection) if rejection else None,
                       required_approvals=int(raw.get("requiredApprovals", REQUIRED_APPROVALS)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ApprovalError(f"malformed break-glass state: {type(exc).__name__}: {exc}") from exc

    def _valid_approvers(self) -> set[str]:
        return {v.caller.person for v in self.approvals if v.at < self.request.expires_at
                and v.caller.person != self.request.requester.person}

    def _require_pending(self, now: int) -> None:
        status = self.status(now)
        if status is not Status.PENDING:
            raise ApprovalError(f"request {self.request.request_id} is {status.value}, not pending; "
                                "make a new request if the image still has to be signed")

    @staticmethod
    def _require_approver(caller: Caller, approvers: Iterable[str], verb: str) -> None:
        if not caller.is_one_of(approvers):
            raise ApprovalError(f"{caller.arn} may not {verb}: only the approver roles may; assume one of them")


def _image_by_digest(image: Any) -> ImageReference:
    try:
        reference = ImageReference.parse(image)
    except InvalidReferenceError as exc:
        raise ApprovalError(str(exc)) from exc
    if reference.digest is None or reference.tag is not None:
        raise ApprovalError(f"image {image!r} must be given as registry/repository@sha256:<digest> (no tag): "
                            "approvers approve one exact image")
    return reference


def _text(value: Any, what: str, limit: int, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise ApprovalError(f"the request needs a {what} (a non-empty string), got {value!r}")
    if len(value) > limit:
        raise ApprovalError(f"the {what} is {len(value)} characters; at most {limit}")
    return value.strip()
