"""Teachers: locate and check a local encoder directory, fine-tune it on the task once, cache it.

Torch layer. The cache key hashes the teacher's files, the data split and the fine-tuning
settings, so a second search with the same inputs reuses the task teacher and its importance
scores. Cache entries are written to a temporary directory and renamed into place, so a
process killed mid-write leaves no half entry behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

from bortnas.core.errors import UnsupportedArchitectureError, UserInputError
from bortnas.data.encode import EncodedSplit
from bortnas.families import SUPPORTED_MODEL_TYPES, family_of
from bortnas.families.teacher_dirs import check_supported
from bortnas.model.importance import Importance, compute_importance
from bortnas.runtime.device import CPU, Device
from bortnas.train.loop import TrainConfig, evaluate, train

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

_logger = logging.getLogger(__name__)

# 2: the transformers warm-up schedule (a teacher fine-tuned under 1 trained differently); 3: fused AdamW on the CPU too
CACHE_VERSION = "3"
IMPORTANCE_EXAMPLES = 512


def load_teacher_config(directory: Path) -> PreTrainedConfig:
    """The transformers config of a teacher directory, checked to be a supported family."""
    from transformers import AutoConfig

    if not (directory / "config.json").is_file():
        raise UserInputError(
            f"teacher directory {directory} has no config.json: pass the directory of a transformers model (save_pretrained writes one)."
        )
    try:
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
    except (ValueError, OSError, KeyError) as e:
        raise UnsupportedArchitectureError(
            f"cannot read {directory}/config.json ({e}); supported families: {', '.join(SUPPORTED_MODEL_TYPES)}."
        ) from e
    check_supported(config, str(directory))
    return config


def _body_key(key: str, prefix: str, body: tuple[str, ...]) -> str | None:
    """`key` relative to the base model if it names an encoder weight (under one of the family's
    `body_prefixes`), else None. A key there that the config does not expect, or one it expects
    and the weights lack, means the two disagree; task and pre-training heads (classifier,
    pooler, cls, lm_head) may be absent or extra."""
    key = key.removeprefix(f"{prefix}.")
    return key if key.startswith(body) else None


def check_teacher_weights(directory: Path, config: PreTrainedConfig) -> None:
    """Raise unless the encoder weights in `model.safetensors` are exactly the ones `config` builds.

    Reads the file's header only and builds the model on the meta device, so nothing is loaded.
    Why: transformers fills weights the file lacks (a config with more layers than the
    checkpoint) with random values and only warns, which would make a teacher that is partly
    noise. A directory with only `pytorch_model.bin` is checked when it is loaded
    (`load_pretrained_teacher`).

    Raises:
        UserInputError: missing, unexpected or differently shaped encoder weights.
    """
    from safetensors import safe_open
    from transformers import AutoModel

    path = directory / "model.safetensors"
    if not path.is_file():
        return
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    prefix, body = model.base_model_prefix, family_of(config).body_prefixes
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith(body)}
    # older checkpoints also store buffers that are no longer saved (BERT's position_ids): not weights
    buffers = {name for name, _ in model.named_buffers()}
    try:
        with safe_open(str(path), "pt") as weights:
            stored = {b: tuple(weights.get_slice(k).get_shape()) for k in weights.keys() if (b := _body_key(k, prefix, body))}
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise UserInputError(f"teacher weights {path} cannot be read ({e}).") from e
    mismatched = {k for k in set(expected) & set(stored) if expected[k] != stored[k]}
    _raise_on_disagreement(directory, set(expected) - set(stored), set(stored) - set(expected) - buffers, mismatched)


def _raise_on_disagreement(directory: Path, missing: set[str], unexpected: set[str], mismatched: set[str]) -> None:
    problems = [
        f"{len(keys)} {what} (e.g. {min(keys)})"
        for keys, what in ((missing, "weights missing"), (unexpected, "unexpected weights"), (mismatched, "weights of another shape"))
        if keys
    ]
    if problems:
        raise UserInputError(f"teacher directory {directory}: config.json and the weights disagree: {'; '.join(problems)}.")


def load_pretrained_teacher(directory: Path, num_labels: int) -> PreTrainedModel:
    """The teacher with a fresh `num_labels` head, refusing weights its config does not describe
    (`check_teacher_weights`, here for any weight format).

    Raises:
        UserInputError: config and weights disagree.
    """
    from transformers import AutoModelForSequenceClassification

    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            directory, num_labels=num_labels, local_files_only=True, output_loading_info=True
        )
    except RuntimeError as e:  # transformers refuses tensors of another shape
        raise UserInputError(f"teacher directory {directory}: config.json and the weights disagree: tensors of another shape.") from e
    prefix, prefixes = model.base_model_prefix, family_of(model.config).body_prefixes
    buffers = {b for name, _ in model.named_buffers() if (b := _body_key(name, prefix, prefixes))}

    def body(keys: set[str]) -> set[str]:
        return {b for k in keys if (b := _body_key(k, prefix, prefixes))} - buffers

    _raise_on_disagreement(directory, body(set(info["missing_keys"])), body(set(info["unexpected_keys"])), set())
    return model


def teacher_files_hash(directory: Path) -> str:
    """SHA-256 over the config and weight files of a teacher directory."""
    digest = hashlib.sha256()
    names = sorted(p.name for p in directory.iterdir() if p.suffix in (".json", ".safetensors", ".bin", ".txt", ".model"))
    if not any(n.endswith((".safetensors", ".bin")) for n in names):
        raise UserInputError(f"teacher directory {directory} holds no weights (model.safetensors or pytorch_model.bin).")
    for name in names:
        digest.update(name.encode())
        with (directory / name).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class TaskTeacher:
    """A teacher fine-tuned on the task, with its tokenizer and unit importance scores."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    importance: Importance
    dev_accuracy: float
    key: str
    source_hash: str
    path: Path


def _fine_tune(
    directory: Path,
    num_labels: int,
    train_split: EncodedSplit,
    dev_split: EncodedSplit,
    config: TrainConfig,
    show_progress_bar: bool,
    device: Device,
) -> tuple[PreTrainedModel, float]:
    torch.manual_seed(config.seed)
    model = load_pretrained_teacher(directory, num_labels)
    check_supported(model.config, str(directory))
    model.to(device.torch_device)  # type: ignore[arg-type]  # transformers wraps .to; typeshed does not bind self
    train(model, train_split, config, show_progress_bar=show_progress_bar, description="fine-tune teacher", device=device)
    return model, evaluate(model, dev_split, device=device).accuracy


def prepare_teacher(
    directory: Path,
    tokenizer: PreTrainedTokenizerBase,
    num_labels: int,
    train_split: EncodedSplit,
    dev_split: EncodedSplit,
    data_fingerprint: str,
    config: TrainConfig,
    cache_dir: Path,
    show_progress_bar: bool = False,
    device: Device = CPU,
) -> TaskTeacher:
    """Fine-tune `directory` on the task (or load it from the cache) and score its units.

    The teacher is fine-tuned on `device` and returned there. The cache key names the recipe
    (files, data, settings), not the device: a teacher fine-tuned on a GPU in bf16 is reused on a
    CPU and the reverse, as one fine-tuned on another machine's CPU already was.
    """
    from transformers import AutoModelForSequenceClassification

    source_hash = teacher_files_hash(directory)
    settings = json.dumps({"v": CACHE_VERSION, "data": data_fingerprint, "labels": num_labels, "train": config.to_dict()}, sort_keys=True)
    key = hashlib.sha256(f"{source_hash}:{settings}".encode()).hexdigest()[:16]
    entry = cache_dir / "teachers" / key
    if (entry / "meta.json").is_file():
        _logger.info("reusing the fine-tuned teacher %s from %s", key, entry)
        model = AutoModelForSequenceClassification.from_pretrained(entry, local_files_only=True).to(device.torch_device).eval()
        meta = json.loads((entry / "meta.json").read_text())
        importance = Importance(**load_file(str(entry / "importance.safetensors")))
        return TaskTeacher(model, tokenizer, importance, meta["dev_accuracy"], key, source_hash, entry)

    _logger.info("fine-tuning the teacher on the task (%d steps); cached as %s", config.steps, key)
    model, dev_accuracy = _fine_tune(directory, num_labels, train_split, dev_split, config, show_progress_bar, device)
    sample = train_split.subset(range(min(IMPORTANCE_EXAMPLES, len(train_split))))
    # in fp32 (no autocast): the ranking of nearly equal units should not depend on the device
    importance = compute_importance(model, (device.put(batch) for batch in sample.batches(32)))

    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=entry.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        save_file({k: v.contiguous() for k, v in importance.state_dict().items()}, str(staging / "importance.safetensors"))
        meta = {"dev_accuracy": dev_accuracy, "source": str(directory), "source_hash": source_hash, "settings": json.loads(settings)}
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        if entry.exists() and not (entry / "meta.json").is_file():
            # an entry without meta.json (a partial copy of a cache) would block the rename forever
            _logger.warning("replacing the incomplete cache entry %s", entry)
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.replace(staging, entry)
        except OSError:
            # another process finished the same entry first; both are identical
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return TaskTeacher(model.eval(), tokenizer, importance, dev_accuracy, key, source_hash, entry)
