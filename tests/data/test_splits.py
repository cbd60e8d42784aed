import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.data.splits import PARTS, Split, default_method, make_split
from modelyard.errors import DataError, InvalidInputError
from modelyard.spec import Spec, parse_spec


def spec(task: str = "binary", **columns: str) -> Spec:
    lines = "".join(f"\n  {role}: {name}" for role, name in columns.items())
    return parse_spec(f"name: t\ntask: {task}\ntarget: y\ncolumns:{lines or ' {}'}\n")


def frame(rows: int = 1_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": [f"R{i:05d}" for i in rng.permutation(rows)],
            "x": rng.normal(size=rows),
            "y": rng.choice(["a", "b", "c"], size=rows, p=[0.7, 0.25, 0.05]),
            "g": rng.integers(0, rows // 10, size=rows),
            "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 60, rows), "D"),
        }
    )


def test_default_method_depends_on_task_and_group_never_time() -> None:
    assert default_method(spec("binary", time="t")) == "stratified"
    assert default_method(spec("multiclass")) == "stratified"
    assert default_method(spec("regression", time="t")) == "random"
    assert default_method(spec("regression", group="g")) == "grouped"
    assert make_split(frame(), spec("binary", time="t")).method == "stratified"


def test_every_row_is_in_exactly_one_part_for_every_method() -> None:
    data = frame()
    for method in ("random", "stratified", "grouped", "time"):
        split = make_split(data, spec("multiclass", id="id", group="g", time="t"), method)
        ids = np.concatenate([split.train, split.validation, split.test])
        assert sorted(ids) == sorted(data["id"]), method
        assert split.method == method


def test_stratified_keeps_each_class_share_within_one_row_per_part() -> None:
    data = frame(rows=1_003, seed=3)
    split = make_split(data, spec("multiclass"), "stratified", fractions=(0.7, 0.13, 0.17))
    positions = split.positions(data)
    sizes = data["y"].value_counts()
    for name, fraction in zip(PARTS, split.fractions, strict=True):
        counts = data["y"].iloc[getattr(positions, name)].value_counts()
        for label, size in sizes.items():
            assert abs(counts.get(label, 0) - size * fraction) <= 1, (name, label)
        assert abs(len(getattr(positions, name)) - len(data) * fraction) <= 1


def test_same_seed_same_split_other_seed_other_split() -> None:
    data = frame()
    for method in ("random", "stratified", "grouped"):
        first = make_split(data, spec(id="id", group="g"), method, seed=7)
        again = make_split(data, spec(id="id", group="g"), method, seed=7)
        other = make_split(data, spec(id="id", group="g"), method, seed=8)
        assert first == again and first.digest == again.digest, method
        assert not np.array_equal(first.test, other.test), method


@pytest.mark.parametrize("columns", [{"id": "id"}, {"id": "n"}, {}])
def test_record_rebuilds_identical_ids(columns: dict[str, str]) -> None:
    data = frame().assign(n=lambda f: np.arange(len(f)) * 3 - 500)
    split = make_split(data, spec(**columns), "stratified", seed=5)
    record = json.loads(json.dumps(split.to_dict()))
    rebuilt = Split.from_dict(record)
    for name in PARTS:
        assert np.array_equal(rebuilt.part(name), split.part(name))
    assert rebuilt == split
    assert rebuilt.id_column == columns.get("id")
    assert rebuilt.id_kind == ("str" if columns.get("id") == "id" else "int")
    assert rebuilt.describe() == split.describe()


def test_record_of_a_million_positions_is_compact() -> None:
    data = pd.DataFrame({"y": np.zeros(1_000_000)})
    split = make_split(data, spec("regression"))
    text = json.dumps(split.to_dict())
    assert len(text) < 600_000
    assert Split.from_dict(json.loads(text)).digest == split.digest


def test_damaged_record_is_refused() -> None:
    record = make_split(frame(), spec(id="id")).to_dict()
    record["ids"]["test"], record["ids"]["validation"] = (
        record["ids"]["validation"],
        record["ids"]["test"],
    )
    with pytest.raises(DataError, match="sha256"):
        Split.from_dict(record)
    with pytest.raises(DataError, match="Cannot read this split record"):
        Split.from_dict({"method": "random"})


def test_positions_follow_ids_when_rows_move() -> None:
    data = frame()
    split = make_split(data, spec(id="id"), "random")
    shuffled = data.sample(frac=1.0, random_state=1).reset_index(drop=True)
    positions = split.positions(shuffled)
    assert sorted(shuffled["id"].iloc[positions.test]) == sorted(split.test)
    assert len(positions.train) + len(positions.validation) + len(positions.test) == len(data)


def test_positions_name_missing_and_repeated_ids() -> None:
    data = frame()
    split = make_split(data, spec(id="id"), "random")
    with pytest.raises(DataError, match=r"test ids of this split are not in column 'id'"):
        split.positions(data[~data["id"].isin(split.test[:3])])
    repeated = pd.concat([data, data.iloc[:2]])
    with pytest.raises(DataError, match="repeated values"):
        split.positions(repeated)
    with pytest.raises(DataError, match="not in the data"):
        split.positions(data.drop(columns="id"))


def test_positional_split_refuses_other_rows() -> None:
    data = frame()
    split = make_split(data, spec(), "random")
    assert split.id_column is None
    with pytest.raises(DataError, match=r"set columns\.id"):
        split.positions(data.iloc[:-1])


def test_ids_must_be_present_and_unique_to_split() -> None:
    data = frame()
    with pytest.raises(DataError, match="repeated values"):
        make_split(data.assign(id="same"), spec(id="id"))
    with pytest.raises(DataError, match="missing values"):
        make_split(data.assign(id=None), spec(id="id"))


def test_bad_requests_say_what_to_do() -> None:
    data = frame()
    with pytest.raises(InvalidInputError, match="one of random, stratified, grouped, time"):
        make_split(data, spec(), "kfold")
    with pytest.raises(InvalidInputError, match="add up to 1"):
        make_split(data, spec(), fractions=(0.5, 0.2, 0.2))
    with pytest.raises(InvalidInputError, match="classification target"):
        make_split(data.assign(y=1.0), spec("regression"), "stratified")
    with pytest.raises(InvalidInputError, match=r"columns\.group"):
        make_split(data, spec(), "grouped")
    with pytest.raises(InvalidInputError, match=r"columns\.time"):
        make_split(data, spec(), "time")


def test_time_split_keeps_boundary_ties_on_the_earlier_side() -> None:
    data = frame(rows=1_000)  # 60 distinct days, so every boundary falls inside a tie
    split = make_split(data, spec(time="t"), "time")
    positions = split.positions(data)
    times = {name: data["t"].iloc[getattr(positions, name)] for name in PARTS}
    assert times["train"].max() < times["validation"].min()
    assert times["validation"].max() < times["test"].min()
    assert split.params["train_until"] == str(times["train"].max())
    assert abs(len(positions.train) - 640) <= data["t"].value_counts().max()


def test_time_split_refuses_missing_times_and_too_few_distinct_times() -> None:
    data = frame()
    with pytest.raises(DataError, match="missing values"):
        make_split(data.assign(t=pd.NaT), spec(time="t"), "time")
    with pytest.raises(DataError, match="left the validation part empty"):
        make_split(data.assign(t=pd.Timestamp("2024-01-01")), spec(time="t"), "time")


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=80),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_grouped_split_never_puts_a_group_on_two_sides(sizes: list[int], seed: int) -> None:
    groups = np.repeat(np.arange(len(sizes)), sizes)
    data = pd.DataFrame({"g": groups, "y": np.arange(len(groups)) % 2})
    if len(sizes) < 3:
        with pytest.raises(DataError, match="empty"):
            make_split(data, spec(group="g"), seed=seed)
        return
    split = make_split(data, spec(group="g"), seed=seed)
    assert split.method == "grouped"
    positions = split.positions(data)
    seen = [set(groups[getattr(positions, name)]) for name in PARTS]
    assert all(seen), "every part gets a group when there are three or more"
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert sum(len(getattr(positions, name)) for name in PARTS) == len(groups)


def test_rows_without_a_group_are_groups_of_their_own() -> None:
    data = frame().assign(g=lambda f: f["g"].where(f["x"] > 0))
    split = make_split(data, spec(group="g"))
    assert sum(split.sizes.values()) == len(data)
