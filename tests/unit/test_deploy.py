from pathlib import Path

import pytest
from _models import make_skops_model_dir, register_skops_versions

from refit.deploy import LocalTarget, Rollout, available_targets, get_target, register_target
from refit.errors import ConflictError, IntegrityError, RegistryError
from refit.registry import ModelRegistry


@pytest.fixture
def reg(tmp_path):
    return register_skops_versions(
        ModelRegistry(str(tmp_path / "store"), "churn"), tmp_path, 3, chain=True
    )


def test_target_registry(reg):
    assert "local" in available_targets()
    target = get_target("local", reg)
    assert isinstance(target, LocalTarget) and target.registry is reg
    with pytest.raises(RegistryError, match=r"unknown deploy target 'nope'.*'local'"):
        get_target("nope", reg)
    register_target("local", LocalTarget)  # same class again: fine

    class Other(LocalTarget):
        pass

    with pytest.raises(RegistryError, match="already registered"):
        register_target("local", Other)
    register_target("test-other", Other)
    assert isinstance(get_target("test-other", reg), Other)


def test_promote_promote_rollback(reg):
    target = LocalTarget(reg)
    assert target.live_version() is None

    r1 = target.promote(1, reason="first model")
    assert (r1.version, r1.previous, r1.action, r1.reason) == (1, None, "promotion", "first model")
    assert target.live_version() == 1 and reg.get_alias("previous") is None
    assert reg.get(1).status == "champion"

    r2 = target.promote(2, reason="challenger blessed")
    assert (r2.version, r2.previous) == (2, 1)
    assert reg.aliases() == {"champion": 2, "previous": 1}
    assert reg.get(2).status == "champion" and reg.get(1).status == "previous"
    assert reg.reference_snapshot() == "2" * 64

    rb = target.rollback(reason="error rate up")
    assert (rb.version, rb.previous, rb.action, rb.reason) == (1, 2, "rollback", "error rate up")
    assert target.live_version() == 1
    assert reg.get_alias("previous") is None  # cleared after a rollback
    assert reg.get(1).status == "champion"
    assert reg.get(2).status == "rolled_back"
    assert reg.get(3).status == "registered"

    with pytest.raises(RegistryError, match="cannot roll back model 'churn': no previous"):
        target.rollback(reason="again")

    events = reg.audit.records()
    deploy = [r for r in events if r["event"] in ("promotion", "rollback")]
    assert [(r["event"], r["payload"]["version"], r["payload"]["previous"]) for r in deploy] == [
        ("promotion", 1, None),
        ("promotion", 2, 1),
        ("rollback", 1, 2),
    ]
    assert deploy[2]["payload"]["reason"] == "error rate up"
    assert reg.audit.verify() == []
    assert target.history() == [r1, r2, rb]
    assert Rollout.from_dict(rb.to_dict()) == rb


def test_third_promotion_retires_old_previous(reg):
    target = LocalTarget(reg)
    target.promote(1, reason="a")
    target.promote(2, reason="b")
    target.promote(3, reason="c")
    assert reg.aliases() == {"champion": 3, "previous": 2}
    assert [v.status for v in reg.list_versions()] == ["retired", "previous", "champion"]


def test_rollback_without_any_promotion(reg):
    with pytest.raises(RegistryError, match="no previous version"):
        LocalTarget(reg).rollback(reason="x")


def test_promote_errors(reg):
    target = LocalTarget(reg)
    with pytest.raises(RegistryError, match="no version 9"):
        target.promote(9, reason="x")
    target.promote(1, reason="x")
    with pytest.raises(RegistryError, match="already the champion"):
        target.promote(1, reason="x")
    (Path(reg.get(2).model_uri) / "model.skops").write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        target.promote(2, reason="x")
    assert target.live_version() == 1
    assert len(reg.audit.records("promotion")) == 1


def test_promote_loses_cas_to_concurrent_writer(reg, monkeypatch):
    target = LocalTarget(reg)
    target.promote(1, reason="x")
    real_aliases = reg.aliases
    calls = {"n": 0}

    def stale_then_real():
        # The first read (inside promote, before the lock) sees a stale champion
        calls["n"] += 1
        if calls["n"] == 1:
            reg.set_alias("champion", 3)  # a concurrent writer moves the champion
            return {"champion": 1}
        return real_aliases()

    monkeypatch.setattr(reg, "aliases", stale_then_real)
    with pytest.raises(ConflictError, match="'champion'.*expected version 1 but it is 3"):
        target.promote(2, reason="x")
    monkeypatch.undo()
    assert reg.get_alias("champion") == 3
    assert len(reg.audit.records("promotion")) == 1


def test_promotion_conditional_on_the_evaluated_champion(reg):
    target = LocalTarget(reg)
    target.promote(1, reason="x", expected_champion=None)
    # two runs evaluated against v1 finish together: the first wins, the second must not
    # replace a champion it was never compared with
    target.promote(2, reason="run a", expected_champion=1)
    with pytest.raises(ConflictError, match="'champion'.*expected version 1 but it is 2"):
        target.promote(3, reason="run b", expected_champion=1)
    assert reg.aliases() == {"champion": 2, "previous": 1}
    assert [r["payload"]["version"] for r in reg.audit.records("promotion")] == [1, 2]


def test_release_steps_promote_against_the_parent_version(reg, tmp_path):
    from refit.steps import promote_model, register_model

    store = reg.store_uri
    LocalTarget(reg).promote(1, reason="first")
    # evaluated against v1 (the champion then), registered with parent 1
    a = register_model(
        str(make_skops_model_dir(tmp_path, b"a", "a")), store, "churn", "s" * 64, {"accuracy": 0.9},
        run_label="a", parent_version=1,
    )  # fmt: skip
    b = register_model(
        str(make_skops_model_dir(tmp_path, b"b", "b")), store, "churn", "s" * 64, {"accuracy": 0.9},
        run_label="b", parent_version=1,
    )  # fmt: skip
    assert promote_model(store, "churn", a, run_label="a") == a
    with pytest.raises(ConflictError):
        promote_model(store, "churn", b, run_label="b")
    assert reg.get_alias("champion") == a
    # without an explicit parent the current champion is taken
    c = register_model(str(make_skops_model_dir(tmp_path, b"c", "c")), store, "churn", "", {})
    assert reg.get(c).parent_version == a
