"""The two-person rule (image_verifier.break_glass.approval): distinctness, expiry, rejection wins,
the requester cannot approve. Callers are the ARNs a function URL's IAM request context carries."""

from __future__ import annotations

import json

import pytest
from image_verifier.break_glass.approval import (
    ApprovalError,
    ApprovalState,
    BreakGlassRequest,
    Caller,
    Status,
)

ACCOUNT = "222222222222"
APPROVER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/break-glass/BreakGlassApprover"
SECOND_APPROVER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/SecurityOnCall"
REQUESTER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/BreakGlassRequester"
APPROVERS = (APPROVER_ROLE, SECOND_APPROVER_ROLE)
IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/payments/api@sha256:" + "ab" * 32
NOW = 1_800_000_000


def session(role: str, person: str, account: str = ACCOUNT) -> Caller:
    return Caller.from_arn(f"arn:aws:sts::{account}:assumed-role/{role}/{person}")


ALICE = session("BreakGlassRequester", "alice@example.com")
BOB = session("BreakGlassApprover", "bob@example.com")
CAROL = session("SecurityOnCall", "carol@example.com")
DAVE = session("BreakGlassApprover", "dave@example.com")


def new_state(now: int = NOW, timeout: int = 3600) -> ApprovalState:
    request = BreakGlassRequest.create(request_id="bg-20260101-1", image=IMAGE, reason="CVE fix, pipeline down",
                                       ticket="INC-4711", requester=ALICE, now=now, timeout_seconds=timeout)
    return ApprovalState.new(request)


def test_two_distinct_approvers_approve_the_request():
    # Given a pending request
    state = new_state()
    # When two different people approve through approver roles
    once = state.approve(BOB, now=NOW + 10, approvers=APPROVERS)
    twice = once.approve(CAROL, now=NOW + 20, approvers=APPROVERS, comment="checked the diff")
    # Then one approval is not enough, two are
    assert state.status(NOW) is Status.PENDING
    assert once.status(NOW + 10) is Status.PENDING
    assert twice.status(NOW + 20) is Status.APPROVED
    twice.check_approved(APPROVERS)
    assert [v.caller.person for v in twice.approvals] == ["bob@example.com", "carol@example.com"]


def test_rejects_approval_when_caller_is_the_requester():
    state = new_state()
    with pytest.raises(ApprovalError, match="requested bg-20260101-1 and cannot approve it"):
        state.approve(ALICE, now=NOW + 1, approvers=APPROVERS + (REQUESTER_ROLE,))


def test_rejects_approval_when_requester_approves_through_an_approver_role():
    # Given the requester also holds the approver role: the same person, another role
    alice_as_approver = session("BreakGlassApprover", "alice@example.com")
    with pytest.raises(ApprovalError, match="cannot approve it: two other people must"):
        new_state().approve(alice_as_approver, now=NOW + 1, approvers=APPROVERS)


def test_rejects_second_approval_when_it_comes_from_the_same_person():
    state = new_state().approve(BOB, now=NOW + 1, approvers=APPROVERS)
    with pytest.raises(ApprovalError, match="bob@example.com already approved"):
        state.approve(BOB, now=NOW + 2, approvers=APPROVERS)


def test_rejects_second_approval_when_the_same_person_uses_another_approver_role():
    state = new_state().approve(BOB, now=NOW + 1, approvers=APPROVERS)
    bob_on_call = session("SecurityOnCall", "bob@example.com")
    with pytest.raises(ApprovalError, match="a second approval must come from a different person"):
        state.approve(bob_on_call, now=NOW + 2, approvers=APPROVERS)


def test_rejects_approval_when_caller_holds_no_approver_role():
    outsider = session("Developer", "eve@example.com")
    with pytest.raises(ApprovalError, match="may not approve: only the approver roles may"):
        new_state().approve(outsider, now=NOW + 1, approvers=APPROVERS)


def test_rejects_approval_when_approver_role_name_is_in_another_account():
    # Given a role with the approver's name in another account
    foreign = session("BreakGlassApprover", "mallory@example.com", account="333333333333")
    with pytest.raises(ApprovalError, match="may not approve"):
        new_state().approve(foreign, now=NOW + 1, approvers=APPROVERS)


def test_request_expires_after_the_time_limit():
    # Given one approval, then silence until the time limit
    state = new_state(timeout=3600).approve(BOB, now=NOW + 100, approvers=APPROVERS)
    # Then it is expired at the limit, and a late approval is refused
    assert state.status(NOW + 3599) is Status.PENDING
    assert state.status(NOW + 3600) is Status.EXPIRED
    with pytest.raises(ApprovalError, match="is expired, not pending"):
        state.approve(CAROL, now=NOW + 3600, approvers=APPROVERS)


def test_remaining_seconds_counts_down_to_one():
    state = new_state(timeout=3600)
    assert state.remaining_seconds(NOW) == 3600
    assert state.remaining_seconds(NOW + 3000) == 600
    assert state.remaining_seconds(NOW + 5000) == 1  # Step Functions refuses TimeoutSecondsPath 0


def test_rejection_wins_over_an_earlier_approval():
    state = new_state().approve(BOB, now=NOW + 1, approvers=APPROVERS)
    rejected = state.reject(CAROL, now=NOW + 2, approvers=APPROVERS, comment="not this digest")
    assert rejected.status(NOW + 2) is Status.REJECTED
    with pytest.raises(ApprovalError, match="is rejected, not pending"):
        rejected.approve(DAVE, now=NOW + 3, approvers=APPROVERS)
    with pytest.raises(ApprovalError, match="was rejected by"):
        rejected.check_approved(APPROVERS)


def test_requester_may_withdraw_but_an_outsider_may_not_reject():
    assert new_state().reject(ALICE, now=NOW + 1, approvers=APPROVERS).status(NOW + 1) is Status.REJECTED
    with pytest.raises(ApprovalError, match="may not reject"):
        new_state().reject(session("Developer", "eve@example.com"), now=NOW + 1, approvers=APPROVERS)


def test_rejects_a_third_approval_when_already_approved():
    state = new_state().approve(BOB, now=NOW + 1, approvers=APPROVERS).approve(CAROL, now=NOW + 2, approvers=APPROVERS)
    with pytest.raises(ApprovalError, match="is approved, not pending"):
        state.approve(DAVE, now=NOW + 3, approvers=APPROVERS)


def test_state_survives_the_json_round_trip_through_the_execution():
    state = new_state().approve(BOB, now=NOW + 1, approvers=APPROVERS, comment="ok")
    again = ApprovalState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state


def test_rejects_signing_check_when_a_forged_state_has_one_person_twice():
    # Given a state assembled by hand (as a direct invocation could): one person under two roles
    state = new_state().approve(BOB, now=NOW + 1, approvers=APPROVERS)
    forged = state.to_json()
    forged["approvals"].append({"caller": session("SecurityOnCall", "bob@example.com").to_json(), "at": NOW + 2})
    with pytest.raises(ApprovalError, match="1 distinct approvals, 2 are required"):
        ApprovalState.from_json(forged).check_approved(APPROVERS)


def test_rejects_signing_check_when_an_approval_came_after_expiry():
    state = new_state(timeout=600).approve(BOB, now=NOW + 1, approvers=APPROVERS).to_json()
    state["approvals"].append({"caller": CAROL.to_json(), "at": NOW + 601})
    with pytest.raises(ApprovalError, match="after it expired"):
        ApprovalState.from_json(state).check_approved(APPROVERS)


@pytest.mark.parametrize(("image", "message"), [
    ("111111111111.dkr.ecr.us-east-1.amazonaws.com/payments/api:v1", "must be given as registry/repository@sha256"),
    ("111111111111.dkr.ecr.us-east-1.amazonaws.com/payments/api:v1@sha256:" + "ab" * 32, "(no tag)"),
    ("registry/repo@sha256:XYZ", "invalid digest"),
])
def test_rejects_request_when_image_is_not_one_exact_digest(image, message):
    with pytest.raises(ApprovalError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BreakGlassRequest.create(request_id="r1", image=image, reason="r", ticket="t", requester=ALICE, now=NOW,
                                 timeout_seconds=3600)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("reason", "  ", "needs a reason"),
    ("ticket", "", "needs a ticket"),
    ("reason", "x" * 1001, "at most 1000"),
    ("request_id", "has space", "must be 1-80 letters"),
    # regression: the pattern once read "0-9-_" (a range from '9' to '_') and let ':' '@' '[' through
    ("request_id", "bg:1", "must be 1-80 letters"),
    ("request_id", "bg@1", "must be 1-80 letters"),
])
def test_rejects_request_when_a_field_is_missing_or_too_long(field, value, message):
    props = {"request_id": "r1", "image": IMAGE, "reason": "why", "ticket": "INC-1", "requester": ALICE, "now": NOW,
             "timeout_seconds": 3600, field: value}
    with pytest.raises(ApprovalError, match=message):
        BreakGlassRequest.create(**props)


@pytest.mark.parametrize("arn", [
    f"arn:aws:iam::{ACCOUNT}:root",
    f"arn:aws:sts::{ACCOUNT}:federated-user/alice",
    "alice",
])
def test_rejects_caller_when_arn_is_no_role_session_or_user(arn):
    with pytest.raises(ApprovalError, match="neither an assumed-role session nor an IAM user"):
        Caller.from_arn(arn)


def test_iam_user_callers_are_matched_by_account_and_name():
    user = Caller.from_arn(f"arn:aws:iam::{ACCOUNT}:user/ops/frank")
    assert user.person == "frank"
    assert user.is_one_of([f"arn:aws:iam::{ACCOUNT}:user/frank"])
    assert not user.is_one_of([f"arn:aws:iam::{ACCOUNT}:role/frank"])


def test_rejects_fewer_than_two_required_approvals():
    request = new_state().request
    with pytest.raises(ApprovalError, match="needs at least 2 approvals"):
        ApprovalState.new(request, required_approvals=1)
