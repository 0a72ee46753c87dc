"""Structured step parameters: dicts and lists, checked, with KFP's doubles made whole again."""

import pytest

from refit.errors import SchemaError
from refit.steps.common import dict_param, list_param, whole_numbers


def test_kfp_doubles_that_are_whole_numbers_become_ints_again() -> None:
    # KFP sends a dict parameter as a protobuf Struct: {"n_estimators": 30} arrives as 30.0
    sent = {"n_estimators": 30.0, "eta": 0.3, "steps": [10.0, 100.0], "on": True, "x": None}
    got = dict_param(sent, "params")
    assert got == {"n_estimators": 30, "eta": 0.3, "steps": [10, 100], "on": True, "x": None}
    assert type(got["n_estimators"]) is int and type(got["steps"][0]) is int
    assert got["on"] is True and type(got["eta"]) is float
    assert whole_numbers({"nested": {"k": 2.0}}) == {"nested": {"k": 2}}
    assert sent["n_estimators"] == 30.0 and type(sent["n_estimators"]) is float  # not mutated


def test_a_parameter_of_the_wrong_shape_is_refused_by_name() -> None:
    assert dict_param(None, "gate") == {} and list_param(None, "beam_pipeline_args") == []
    with pytest.raises(SchemaError, match=r"gate must be a dict with string keys, got str"):
        dict_param('{"thresholds": {}}', "gate")
    with pytest.raises(SchemaError, match=r"policy must be a dict with string keys, got dict"):
        dict_param({1: "a"}, "policy")
    with pytest.raises(SchemaError, match=r"beam_pipeline_args must be a list of strings"):
        list_param("--runner=DirectRunner", "beam_pipeline_args")
