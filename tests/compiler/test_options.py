"""Compile options: defaults, validation, and messages that list the valid choices."""

from __future__ import annotations

import pytest

from recipe_compiler.compiler.options import (
    CENTERING,
    INTERACTIONS,
    METHODS,
    RANDOM_SLOPES,
    Options,
    make_options,
)
from recipe_compiler.errors import OptionError


def test_defaults_are_table_7_5_as_written() -> None:
    opts = make_options()
    assert opts == Options()
    assert (opts.interactions, opts.centering, opts.random_slopes) == (
        "implied", "none", "include")
    assert opts.auxiliary == () and opts.methods == ()


def test_options_are_frozen_and_hashable() -> None:
    a = make_options(auxiliary=["a", "b"], methods={"y": "2l.norm"})
    b = make_options(auxiliary=("a", "b"), methods={"y": "2l.norm"})
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.centering = "cluster"  # type: ignore[misc]


def test_a_single_auxiliary_string_is_one_column() -> None:
    assert make_options(auxiliary="ses").auxiliary == ("ses",)


def test_method_overrides_and_to_dict_round_trip() -> None:
    opts = make_options(interactions="all_pairwise", centering="cluster",
                        random_slopes="means_only", auxiliary=["a"], methods={"y": "2l.norm"},
                        categorical=["c"], levels={"z": 2})
    assert opts.method_overrides == {"y": "2l.norm"} and opts.declared_levels == {"z": 2}
    assert opts.to_dict() == {"interactions": "all_pairwise", "centering": "cluster",
                              "random_slopes": "means_only", "auxiliary": ["a"],
                              "methods": {"y": "2l.norm"}, "categorical": ["c"],
                              "levels": {"z": 2}}
    assert make_options(**opts.to_dict()) == opts


def test_a_categorical_auxiliary_is_an_auxiliary_declared_categorical() -> None:
    opts = make_options(auxiliary=["C(FedState)", "ses", "factor( track )"],
                        categorical="ses")
    assert opts.auxiliary == ("FedState", "ses", "track")
    assert opts.categorical == ("ses", "FedState", "track")


@pytest.mark.parametrize("levels", [{"z": 4}, {"z": True}, {"z": "two"}, {"z": 2.5}])
def test_a_level_must_be_1_or_2(levels: dict[str, object]) -> None:
    with pytest.raises(OptionError, match=r"levels\['z'\]=.* is not valid; a column is level 1 "
                                          r"\(varies within clusters\) or 2"):
        make_options(levels=levels)


def test_levels_from_the_command_line_are_strings() -> None:
    assert make_options(levels={"z": "2", "x": "1"}).levels == (("z", 2), ("x", 1))


def test_levels_must_be_a_mapping() -> None:
    with pytest.raises(OptionError, match="levels must be a mapping"):
        make_options(levels=["z"])


def test_unknown_option_name_lists_the_valid_ones() -> None:
    with pytest.raises(OptionError, match="unknown option 'interaction'; valid options: "
                                          "interactions, centering, random_slopes, auxiliary, "
                                          "methods, categorical, levels"):
        make_options(interaction="implied")


@pytest.mark.parametrize("name, valid", [("interactions", INTERACTIONS),
                                         ("centering", CENTERING),
                                         ("random_slopes", RANDOM_SLOPES)])
def test_unknown_option_value_lists_the_valid_ones(name: str, valid: tuple[str, ...]) -> None:
    choices = ", ".join(repr(v) for v in valid)
    with pytest.raises(OptionError) as exc:
        make_options(**{name: "bogus"})
    assert str(exc.value) == f"{name}='bogus' is not valid; choose one of {choices}"


@pytest.mark.parametrize("name, valid", [("interactions", INTERACTIONS),
                                         ("centering", CENTERING),
                                         ("random_slopes", RANDOM_SLOPES)])
def test_every_listed_value_is_accepted(name: str, valid: tuple[str, ...]) -> None:
    for value in valid:
        assert getattr(make_options(**{name: value}), name) == value


def test_unknown_method_lists_every_method() -> None:
    with pytest.raises(OptionError) as exc:
        make_options(methods={"y": "2l.pmn"})
    message = str(exc.value)
    assert message.startswith("methods['y']='2l.pmn' is not valid; choose one of ")
    assert all(repr(m) in message for m in METHODS)


def test_auxiliary_must_be_a_list() -> None:
    with pytest.raises(OptionError, match="auxiliary must be a list of column names, got 3"):
        make_options(auxiliary=3)


def test_methods_must_be_a_mapping() -> None:
    with pytest.raises(OptionError, match="methods must be a mapping"):
        make_options(methods=["2l.pmm"])


def test_options_object_validates_itself() -> None:
    with pytest.raises(OptionError, match="centering='both' is not valid"):
        Options(centering="both")
