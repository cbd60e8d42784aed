import modelyard


def test_every_public_name_resolves_and_is_listed_once() -> None:
    assert len(modelyard.__all__) == len(set(modelyard.__all__))
    for name in modelyard.__all__:
        assert getattr(modelyard, name) is not None, name
    assert set(dir(modelyard)) == set(modelyard.__all__)
    assert set(modelyard.__all__) == {"__version__", *modelyard._EXPORTS}


def test_unknown_names_raise_attribute_error() -> None:
    try:
        modelyard.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
