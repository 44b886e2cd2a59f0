from __future__ import annotations

from pathlib import Path

import pytest

from bortnas.core.errors import SearchSpaceError
from bortnas.core.space import ArchSpec, QuantMode, SearchSpace, TeacherShape, load_search_space, parse_search_space

REPO = Path(__file__).resolve().parents[2]
MINILM = TeacherShape(layers=6, hidden=384, heads=12, ffn=1536, vocab_size=30522, max_positions=512, type_vocab_size=2)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_quick_space_parses_into_frozen_candidates() -> None:
    space = load_search_space(REPO / "search_spaces" / "minilm_quick.yaml")
    candidates = list(space.candidates())
    assert len(candidates) == len(space) == 2 * 3 * 2 * 3
    assert candidates[0] == ArchSpec(2, 192, 6, 384)
    assert space.maximum_point == ArchSpec(4, 384, 12, 1536)
    space.check_fits(MINILM)
    with pytest.raises(AttributeError):
        candidates[0].layers = 3  # type: ignore[misc]


def test_full_space_skips_indivisible_combinations() -> None:
    space = load_search_space(REPO / "search_spaces" / "minilm_full.yaml")
    valid = [(h, a) for h in space.hidden for a in space.heads if h % a == 0]
    assert len(space) == len(space.layers) * len(space.ffn) * len(valid)
    assert all(c.hidden % c.heads == 0 for c in space.candidates())
    space.check_fits(MINILM)


def test_yaml_round_trip(tmp_path: Path) -> None:
    space = load_search_space(REPO / "search_spaces" / "minilm_quick.yaml")
    again = load_search_space(write(tmp_path, space.to_yaml()))
    assert list(again.candidates()) == list(space.candidates())
    assert again.fingerprint() == space.fingerprint()


def test_arch_id_is_stable_and_distinct() -> None:
    a, b = ArchSpec(2, 192, 6, 384), ArchSpec(2, 192, 6, 768)
    assert a.arch_id == ArchSpec.from_dict(a.to_dict()).arch_id
    assert a.arch_id != b.arch_id
    assert a.key == "L2-H192-A6-I384-fp32"
    assert a.quant is QuantMode.FP32


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("layers: [2]\nhidden: [64]\nheads: [4]\nffn: [64]\ndepth: [3]\n", "unknown key 'depth'"),
        ("layers: [0, 2]\nhidden: [64]\nheads: [4]\nffn: [64]\n", "layers in .* has 0: every value must be a positive integer"),
        ("layers: [2.5]\nhidden: [64]\nheads: [4]\nffn: [64]\n", "has 2.5"),
        ("layers: [two]\nhidden: [64]\nheads: [4]\nffn: [64]\n", "has 'two'"),
        ("layers: [2]\nhidden: [64]\nheads: [3]\nffn: [64]\n", "hidden=64 .* divisible by none of heads=\\[3\\]"),
        ("layers: [2]\nhidden: [64]\nheads: [4, 3]\nffn: [64]\n", "heads=3 .* divides none of hidden"),
        ("layers: []\nhidden: [64]\nheads: [4]\nffn: [64]\n", "layers in .* is empty"),
        ("layers: [2]\nhidden: [64]\nheads: [4]\n", "key 'ffn' is missing"),
        ("layers: [2\nhidden: [64]\n", "not valid YAML at line"),
        ("", "must be a YAML mapping"),
        ("layers: [2]\nhidden: [64]\nheads: [4]\nffn: [64]\nquant: [int3]\n", "quant='int3' .* unknown: supported modes are fp32"),
    ],
)
def test_invalid_files_name_the_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SearchSpaceError, match=fragment) as info:
        load_search_space(path)
    assert str(path) in str(info.value)


def test_values_larger_than_the_teacher_are_rejected() -> None:
    space = parse_search_space({"layers": [2, 8], "hidden": [192], "heads": [6], "ffn": [384]}, "x.yaml")
    with pytest.raises(SearchSpaceError, match=r"layers=\[8\] in x.yaml is larger than the teacher's layers=6"):
        space.check_fits(MINILM)


def test_missing_file_is_a_search_space_error(tmp_path: Path) -> None:
    with pytest.raises(SearchSpaceError, match="cannot read search space"):
        load_search_space(tmp_path / "nope.yaml")


def test_membership_and_direct_construction() -> None:
    space = SearchSpace(layers=(2, 1), hidden=(32,), heads=(4,), ffn=(64,))
    assert space.layers == (1, 2)
    assert ArchSpec(1, 32, 4, 64) in space
    assert ArchSpec(3, 32, 4, 64) not in space
    with pytest.raises(SearchSpaceError, match="positive integer"):
        ArchSpec(0, 32, 4, 64)


SPACE = "layers: [2]\nhidden: [64]\nheads: [4]\nffn: [64]\n"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("42", r"\(found a number 42\)"),
        ("[quick, search]", r"\(found a list \['quick', 'search'\]\)"),
        ("", r"\(found an empty value None\)"),
    ],
)
def test_description_must_be_a_string(tmp_path: Path, value: str, fragment: str) -> None:
    path = write(tmp_path, SPACE + f"description: {value}\n")
    with pytest.raises(
        SearchSpaceError, match=rf"description in .*space\.yaml must be a string {fragment}: write one line of text"
    ) as info:
        load_search_space(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("value", ["quick search on MiniLM", '"42"', "''"])
def test_string_description_is_accepted(tmp_path: Path, value: str) -> None:
    space = load_search_space(write(tmp_path, SPACE + f"description: {value}\n"))
    assert len(space) == 1
    assert space.name == "space"
