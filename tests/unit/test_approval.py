"""Human approval: requests, approvals, rejections, timeouts and release, on real registries."""

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _gcs import fake_gcs
from _models import register_skops_versions

from refit.deploy import LocalTarget
from refit.errors import ConflictError, PolicyError, RegistryError
from refit.governance.approval import (
    ApprovalPolicy,
    ApprovalRequest,
    NotAnApproverError,
    approve,
    expire_stale,
    get_request,
    pending,
    reject,
    release_approved,
    request_approval,
)
from refit.registry import ModelRegistry

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def populate(reg: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    """v1 is the champion; v2 and v3 are challengers evaluated against v1."""
    register_skops_versions(reg, tmp_path, 3, chain=False)
    LocalTarget(reg).promote(1, reason="first model")
    return reg


@pytest.fixture
def reg(tmp_path):
    return populate(ModelRegistry(str(tmp_path / "store"), "churn"), tmp_path)


def events(reg, name):
    return [r["payload"] for r in reg.audit.records() if r["event"] == name]


# --------------------------------------------------------------------------- policy


def test_policy_parses_strictly():
    assert ApprovalPolicy.from_dict({}) == ApprovalPolicy(False, 72.0, [])
    policy = ApprovalPolicy.from_dict(
        {"required": True, "timeout_hours": 4, "approvers": [" alice ", "bob"]}
    )
    assert policy.required is True and policy.timeout_hours == 4.0
    assert policy.approvers == ["alice", "bob"]
    assert ApprovalPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(PolicyError, match=r"unknown field\(s\) approver; known fields"):
        ApprovalPolicy.from_dict({"required": True, "approver": ["alice"]})
    with pytest.raises(PolicyError, match="'required' must be true or false"):
        ApprovalPolicy.from_dict({"required": "yes"})
    for bad in (0, -1, float("nan"), "2", True):
        with pytest.raises(PolicyError, match="timeout_hours must be a number of hours > 0"):
            ApprovalPolicy.from_dict({"timeout_hours": bad})
    with pytest.raises(PolicyError, match="'approvers' must be a list of names"):
        ApprovalPolicy.from_dict({"approvers": "alice"})
    with pytest.raises(PolicyError, match="approvers entry must be a non-empty name"):
        ApprovalPolicy.from_dict({"approvers": ["alice", " "]})
    with pytest.raises(PolicyError, match="must be a mapping"):
        ApprovalPolicy.from_dict(["required"])


# --------------------------------------------------------------------------- request


def test_request_holds_the_version_and_records_it(reg):
    req = request_approval(reg, 2, timeout_hours=48, run_label="run-7", now=T0)
    assert reg.get(2).status == "awaiting_approval"
    assert (req.requested_at, req.expires_at) == (
        T0.isoformat(),
        (T0 + timedelta(hours=48)).isoformat(),
    )
    assert req.parent_version == 1 and req.run_label == "run-7"
    assert get_request(reg, 2) == req
    assert reg.read_state("approval-v2")["status"] == "awaiting_approval"
    assert pending(reg) == [req]
    [record] = events(reg, "approval_requested")
    assert record == {
        "model": "churn",
        "version": 2,
        "requested_at": req.requested_at,
        "expires_at": req.expires_at,
        "timeout_hours": 48.0,
        "run_label": "run-7",
        "parent_version": 1,
        "approvers": [],
    }
    # the champion is untouched while a request waits
    assert reg.get_alias("champion") == 1 and reg.get(1).status == "champion"


def test_request_refuses_versions_not_freshly_registered(reg):
    with pytest.raises(RegistryError, match=r"version 1: its status is 'champion'"):
        request_approval(reg, 1, timeout_hours=1, run_label="r")
    request_approval(reg, 2, timeout_hours=1, run_label="r")
    with pytest.raises(RegistryError, match=r"version 2: its status is 'awaiting_approval'"):
        request_approval(reg, 2, timeout_hours=1, run_label="r")
    with pytest.raises(RegistryError, match="no version 9"):
        request_approval(reg, 9, timeout_hours=1, run_label="r")
    with pytest.raises(RegistryError, match="timeout_hours must be a number of hours > 0"):
        request_approval(reg, 3, timeout_hours=0, run_label="r")
    assert reg.get(3).status == "registered"
    assert len(events(reg, "approval_requested")) == 1


# --------------------------------------------------------------------------- approve / reject


def test_approve_records_who_why_and_when(reg):
    request_approval(reg, 2, timeout_hours=48, run_label="run-7", now=T0)
    at = T0 + timedelta(hours=3)
    decided = approve(reg, 2, by="  alice ", reason="fairness ok", now=at, audit={"via": "test"})
    assert decided.status == "approved" and decided.decided_by == "alice"
    assert reg.get(2).status == "approved"
    assert get_request(reg, 2) == decided
    assert decided.decided_at == at.isoformat() and decided.reason == "fairness ok"
    assert pending(reg) == []
    assert "approval-pending-2" not in reg.aliases()
    [record] = events(reg, "approval")
    assert record["by"] == "alice" and record["reason"] == "fairness ok"
    assert record["at"] == at.isoformat() and record["version"] == 2
    assert record["run_label"] == "run-7" and record["via"] == "test"
    assert record["timed_out"] is False
    # approval alone releases nothing
    assert reg.get_alias("champion") == 1
    assert reg.audit.verify() == []


def test_double_approval_and_approving_what_is_not_waiting(reg):
    request_approval(reg, 2, timeout_hours=48, run_label="r", now=T0)
    approve(reg, 2, by="alice", reason="ok", now=T0)
    with pytest.raises(
        RegistryError,
        match=r"cannot approve model 'churn' version 2: its status is 'approved', not "
        r"'awaiting_approval' \(approved by alice at .*: ok\)",
    ):
        approve(reg, 2, by="bob", now=T0)
    with pytest.raises(RegistryError, match="version 3: its status is 'registered', not"):
        approve(reg, 3, by="alice", now=T0)
    with pytest.raises(RegistryError, match="version 1: its status is 'champion'"):
        reject(reg, 1, by="alice", reason="no", now=T0)
    with pytest.raises(RegistryError, match="no version 9"):
        approve(reg, 9, by="alice")
    assert len(events(reg, "approval")) == 1 and events(reg, "rejection") == []
    assert reg.get(3).status == "registered" and get_request(reg, 3) is None


def test_by_must_name_someone_and_rejection_needs_a_reason(reg):
    request_approval(reg, 2, timeout_hours=48, run_label="r", now=T0)
    for by in ("", "   ", None, 7):
        with pytest.raises(RegistryError, match="by must be a non-empty name"):
            approve(reg, 2, by=by, now=T0)
    with pytest.raises(RegistryError, match="control characters"):
        approve(reg, 2, by="alice\nbob", now=T0)
    with pytest.raises(RegistryError, match="reason for rejecting model 'churn' version 2"):
        reject(reg, 2, by="alice", reason="  ", now=T0)
    assert reg.get(2).status == "awaiting_approval"
    assert events(reg, "approval") == [] and events(reg, "rejection") == []


def test_rejection_is_final(reg):
    request_approval(reg, 2, timeout_hours=48, run_label="r", now=T0)
    decided = reject(reg, 2, by="bob", reason="latency regressed", now=T0 + timedelta(hours=1))
    assert decided.status == "rejected" and reg.get(2).status == "rejected"
    [record] = events(reg, "rejection")
    assert (record["by"], record["reason"], record["timed_out"]) == (
        "bob",
        "latency regressed",
        False,
    )
    with pytest.raises(RegistryError, match=r"'rejected'.*rejected by bob at .*latency regressed"):
        approve(reg, 2, by="alice", now=T0 + timedelta(hours=2))
    with pytest.raises(RegistryError, match="its status is 'rejected', not 'approved'"):
        release_approved(reg, 2)
    with pytest.raises(RegistryError, match="status is 'rejected', not 'registered'"):
        request_approval(reg, 2, timeout_hours=1, run_label="again")
    assert reg.get_alias("champion") == 1 and pending(reg) == []


def test_approvers_allow_list(reg):
    policy = ApprovalPolicy.from_dict({"required": True, "approvers": ["alice", "bob"]})
    request_approval(
        reg,
        2,
        timeout_hours=policy.timeout_hours,
        approvers=policy.approvers,
        run_label="r",
        now=T0,
    )
    with pytest.raises(NotAnApproverError, match=r"'mallory' is not one of its approvers"):
        approve(reg, 2, by="mallory", reason="trust me", now=T0)
    with pytest.raises(NotAnApproverError, match=r"\(alice, bob\)"):
        reject(reg, 2, by="Alice", reason="case matters", now=T0)
    assert reg.get(2).status == "awaiting_approval"
    assert events(reg, "approval") == [] and events(reg, "rejection") == []
    assert approve(reg, 2, by="bob", now=T0).decided_by == "bob"
    assert events(reg, "approval_requested")[0]["approvers"] == ["alice", "bob"]


# --------------------------------------------------------------------------- timeouts


def test_expired_request_cannot_be_decided_and_is_swept(reg):
    request_approval(reg, 2, timeout_hours=2, run_label="r", now=T0)
    request_approval(reg, 3, timeout_hours=24, run_label="r", now=T0)
    just_before = T0 + timedelta(hours=2) - timedelta(seconds=1)
    assert expire_stale(reg, just_before) == []
    later = T0 + timedelta(hours=2)
    with pytest.raises(
        RegistryError,
        match=r"version 2: its approval request expired at 2026-11-26T11:00:00\+00:00 "
        r"\(2 h after 2026-11-26T09:00:00\+00:00\)",
    ):
        approve(reg, 2, by="alice", now=later)
    with pytest.raises(RegistryError, match="expired at"):
        reject(reg, 2, by="alice", reason="late", now=later)
    assert reg.get(2).status == "awaiting_approval"
    assert [r.version for r in pending(reg)] == [2, 3]
    assert [r.expired(later) for r in pending(reg)] == [True, False]

    [swept] = expire_stale(reg, later)
    assert swept.version == 2 and swept.status == "rejected" and swept.timed_out
    assert swept.reason == "approval timed out after 2 h" and swept.decided_by == "refit"
    assert reg.get(2).status == "rejected" and reg.get(3).status == "awaiting_approval"
    [record] = events(reg, "rejection")
    assert record["reason"] == "approval timed out after 2 h"
    assert record["by"] == "refit" and record["timed_out"] is True
    assert expire_stale(reg, later) == []  # swept once
    assert [r.version for r in pending(reg)] == [3]
    with pytest.raises(RegistryError, match=r"status is 'rejected'.*approval timed out after 2 h"):
        approve(reg, 2, by="alice", now=later)
    assert approve(reg, 3, by="alice", now=later).status == "approved"


# --------------------------------------------------------------------------- release


def test_release_promotes_against_the_parent_champion(reg):
    request_approval(reg, 2, timeout_hours=48, run_label="run-7", now=T0)
    with pytest.raises(RegistryError, match="status is 'awaiting_approval', not 'approved'"):
        release_approved(reg, 2)
    approve(reg, 2, by="alice", reason="looks right", now=T0)
    assert release_approved(reg, 2, run_label="approval") == 2
    assert reg.get_alias("champion") == 2 and reg.get(2).status == "champion"
    assert reg.get(1).status == "previous"
    promotion = events(reg, "promotion")[-1]
    assert promotion["version"] == 2 and promotion["previous"] == 1
    assert promotion["reason"] == "approved by alice: looks right"
    assert promotion["run_label"] == "approval"


def test_release_conflicts_when_the_champion_moved(reg):
    request_approval(reg, 3, timeout_hours=48, run_label="r", now=T0)
    approve(reg, 3, by="alice", now=T0)
    LocalTarget(reg).promote(2, reason="someone else's run won")
    with pytest.raises(
        ConflictError,
        match=r"approved model 'churn' version 3 was not released: it was evaluated against "
        r"champion v1, but the champion is now v2; the approval stands",
    ):
        release_approved(reg, 3)
    assert reg.get_alias("champion") == 2 and reg.get(3).status == "approved"
    assert [p["version"] for p in events(reg, "promotion")] == [1, 2]


def test_racing_decisions_have_one_winner(reg):
    request_approval(reg, 2, timeout_hours=48, run_label="r", now=T0)
    store, barrier = reg.store_uri, threading.Barrier(8)
    wins, losses = [], []

    def decide(i: int) -> None:
        mine = ModelRegistry(store, "churn")  # own object, own lock handle: as another process
        barrier.wait()
        try:
            if i % 2:
                wins.append(approve(mine, 2, by=f"p{i}", now=T0))
            else:
                wins.append(reject(mine, 2, by=f"p{i}", reason="no", now=T0))
        except RegistryError as exc:
            losses.append(str(exc))

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 7
    winner = wins[0]
    assert reg.get(2).status == winner.status
    assert get_request(reg, 2) == winner
    decided = events(reg, "approval") + events(reg, "rejection")
    assert [d["by"] for d in decided] == [winner.decided_by]
    assert all("version 2" in msg and winner.status in msg for msg in losses)


# --------------------------------------------------------------------------- gs://


@pytest.fixture(scope="module")
def gcs_server():
    with fake_gcs("refit-approval-test") as server:
        yield server


def test_approval_on_a_gcs_registry(gcs_server, tmp_path):
    reg = populate(ModelRegistry("gs://refit-approval-test/store", "churn"), tmp_path)
    request_approval(reg, 2, timeout_hours=1, approvers=["alice"], run_label="r", now=T0)
    request_approval(reg, 3, timeout_hours=1, run_label="r", now=T0)
    assert [r.version for r in pending(reg)] == [2, 3]
    with pytest.raises(NotAnApproverError):
        approve(reg, 2, by="bob", now=T0)
    approve(reg, 2, by="alice", reason="ok", now=T0)
    with pytest.raises(RegistryError, match="status is 'approved'"):
        approve(reg, 2, by="alice", now=T0)
    [swept] = expire_stale(reg, T0 + timedelta(hours=1))
    assert swept.version == 3 and reg.get(3).status == "rejected"
    assert release_approved(reg, 2) == 2
    assert reg.get_alias("champion") == 2
    assert [r["event"] for r in reg.audit.records()][-4:] == [
        "approval_requested",
        "approval",
        "rejection",
        "promotion",
    ]
    assert reg.audit.verify() == []
    assert isinstance(get_request(reg, 3), ApprovalRequest)
