import math

import numpy as np
import pandas as pd
import pytest

from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import DataError, InvalidInputError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30, 40, 50, 60],
            "income": [1000.0, np.nan, 3000.0, 4000.0],
            "city": ["paris", "rome", None, "paris"],
            "flag": [True, False, True, True],
        }
    )


def test_fit_infers_kinds_vocabularies_and_nullability(frame: pd.DataFrame) -> None:
    enc = FeatureEncoder.fit(frame, ["age", "income", "city", "flag"])
    kinds = {f.name: (f.kind, f.nullable, f.categories) for f in enc.fields}
    assert kinds["age"] == ("number", False, ())
    assert kinds["income"] == ("number", True, ())
    assert kinds["city"] == ("category", True, ("paris", "rome"))
    assert kinds["flag"][0] == "category"
    assert enc.categorical_indices == [2, 3]


def test_records_encode_exactly_like_the_frame(frame: pd.DataFrame) -> None:
    enc = FeatureEncoder.fit(frame, ["age", "income", "city"])
    records = frame[["age", "income", "city"]].astype(object)
    records = records.where(records.notna(), None).to_dict("records")
    np.testing.assert_array_equal(enc.encode_records(records), enc.transform(frame))


def test_unseen_category_becomes_missing_not_an_error(frame: pd.DataFrame) -> None:
    enc = FeatureEncoder.fit(frame, ["city"])
    assert math.isnan(enc.encode_records([{"city": "oslo"}])[0, 0])
    assert enc.encode_records([{"city": "rome"}])[0, 0] == 1.0


def test_bad_records_list_every_bad_field(frame: pd.DataFrame) -> None:
    enc = FeatureEncoder.fit(frame, ["age", "income", "city"])
    with pytest.raises(InvalidInputError) as info:
        enc.encode_records(
            [
                {"age": "old", "income": 1.0, "city": "rome"},
                {"age": None, "income": True, "city": ["x"]},
                7,
            ]
        )
    fields = [(d["row"], d["field"]) for d in info.value.details]
    assert fields == [(0, "age"), (1, "age"), (1, "income"), (1, "city"), (2, None)]
    assert "row 0, field 'age'" in info.value.message
    assert "expected a number" in info.value.details[0]["error"]


def test_non_finite_numbers_are_rejected(frame: pd.DataFrame) -> None:
    enc = FeatureEncoder.fit(frame, ["income"])
    with pytest.raises(InvalidInputError, match="finite"):
        enc.encode_records([{"income": float("inf")}])


def test_round_trips_through_plain_data(frame: pd.DataFrame) -> None:
    enc = FeatureEncoder.fit(frame, ["age", "city"])
    again = FeatureEncoder.from_dict(enc.to_dict())
    np.testing.assert_array_equal(again.transform(frame), enc.transform(frame))


def test_missing_columns_are_named(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"\['height'\]"):
        FeatureEncoder.fit(frame, ["age", "height"])
    enc = FeatureEncoder.fit(frame, ["age"])
    with pytest.raises(DataError, match="'age'"):
        enc.transform(frame.drop(columns="age"))
