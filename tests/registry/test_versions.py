import pytest

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.registry.versions import list_models, register_model, resolve, set_alias


def _register(project: Project, digest: str, aliases: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return register_model(
        project,
        "loans",
        digest=digest,
        flavor="lightgbm",
        run_id=None,
        signature={"fields": []},
        metrics={"roc_auc": 0.8},
        gates=[],
        aliases=aliases,
    )


def test_versions_count_up_per_model_and_record_the_spec(project: Project) -> None:
    first = _register(project, "a" * 64, aliases=("champion",))
    second = _register(project, "b" * 64)
    other = register_model(
        project,
        "fraud",
        digest="c" * 64,
        flavor="sklearn",
        run_id=None,
        signature={},
        metrics={},
        gates=[],
    )
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.spec_hash == project.spec_hash
    assert [m.ref for m in list_models(project)] == ["fraud@1", "loans@1", "loans@2"]


def test_refs_resolve_by_latest_number_and_alias(project: Project) -> None:
    _register(project, "a" * 64, aliases=("champion",))
    _register(project, "b" * 64, aliases=("challenger",))
    assert resolve(project, "loans").version == 2
    assert resolve(project, "loans@1").digest == "a" * 64
    assert resolve(project, "loans@champion").version == 1
    assert resolve(project, "loans@challenger").aliases == ("challenger",)


def test_moving_an_alias_leaves_one_pointer(project: Project) -> None:
    _register(project, "a" * 64, aliases=("champion",))
    _register(project, "b" * 64)
    moved = set_alias(project, "loans", "champion", 2)
    assert moved.aliases == ("champion",)
    assert resolve(project, "loans@1").aliases == ()
    assert resolve(project, "loans@champion").version == 2


def test_unknown_refs_and_bad_aliases_are_clear_errors(project: Project) -> None:
    _register(project, "a" * 64)
    with pytest.raises(NotFoundError, match="'loans@7'"):
        resolve(project, "loans@7")
    with pytest.raises(NotFoundError, match="'loans@prod'"):
        resolve(project, "loans@prod")
    with pytest.raises(NotFoundError, match="'nope'"):
        resolve(project, "nope")
    for bad in ("3", "Champion", "", "a b"):
        with pytest.raises(InvalidInputError, match="Alias"):
            set_alias(project, "loans", bad, 1)
