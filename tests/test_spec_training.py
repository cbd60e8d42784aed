"""The spec's ``training`` section: defaults, validation, and the spec version."""

import pytest

from modelyard.data.demo import DEMO_SPEC
from modelyard.errors import SpecError
from modelyard.spec import SearchSettings, Training, parse_spec

BASE = "name: p\ntask: binary\ntarget: y\n"


def test_defaults_keep_old_specs_working_and_their_version() -> None:
    spec = parse_spec(DEMO_SPEC)
    assert spec.training == Training()
    assert spec.training.imbalance == "none" and spec.training.seed == 42
    assert spec.training.families is None and spec.training.search is None
    spelled_out = parse_spec(DEMO_SPEC + "training:\n  imbalance: none\n  seed: 42\n")
    assert spelled_out.content_hash == spec.content_hash
    assert "training" not in spec.model_dump_json(exclude_defaults=True)


def test_a_training_setting_changes_the_spec_version() -> None:
    plain = parse_spec(BASE)
    weighted = parse_spec(BASE + "training:\n  imbalance: class_weight\n")
    searched = parse_spec(BASE + "training:\n  search: {method: grid}\n")
    assert len({plain.content_hash, weighted.content_hash, searched.content_hash}) == 3
    assert searched.training.search == SearchSettings(method="grid", trials=20, folds=3)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("training:\n  imbalance: smote\n", 5, "class_weight"),
        ("training:\n  families: [lightgmb]\n", 5, "Did you mean 'lightgbm'"),
        ("training:\n  families: [logistic, mean]\n", 5, "'mean' cannot learn task 'binary'"),
        ("training:\n  families: [tree, tree]\n", 5, "twice"),
        ("training:\n  imbalance: class_weight\n  target_ratio: 0.5\n", 6, "oversample"),
        ("training:\n  imbalance: oversample\n  target_ratio: 1.5\n", 6, "target_ratio"),
        ("training:\n  search: {method: grid, folds: 1}\n", 5, "folds"),
    ],
)
def test_mistakes_point_at_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(BASE + text, source="modelyard.yaml")
    message = str(caught.value)
    assert fragment in message and f"modelyard.yaml:{line}" in message


def test_imbalance_is_for_classification_only() -> None:
    text = "name: p\ntask: regression\ntarget: y\ntraining:\n  imbalance: oversample\n"
    with pytest.raises(SpecError, match="only applies to classification"):
        parse_spec(text)
