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
import pickle
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.nn.utils.rnn import pad_sequence

from bortnas.core.disk import HEADROOM_BYTES, check_free_space, disk_full_error, is_disk_full
from bortnas.core.errors import UserInputError
from bortnas.core.tasks import CLASSIFICATION, Task
from bortnas.data.encode import EncodedSplit
from bortnas.families import family_of
from bortnas.families.teacher_dirs import check_supported
from bortnas.model.importance import Importance, compute_importance
from bortnas.runtime.device import CPU, Device
from bortnas.train.loop import TrainConfig, evaluate, task_outputs, train
from bortnas.train.objectives import Objective
from bortnas.trial.inputs import body_key, raise_on_disagreement

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

_logger = logging.getLogger(__name__)

# 2: the transformers warm-up schedule (a teacher fine-tuned under 1 trained differently); 3: fused AdamW on the CPU too
CACHE_VERSION = "3"
IMPORTANCE_EXAMPLES = 512


def _auto_class(task: Task) -> Any:
    import transformers

    return getattr(transformers, task.auto_class)


def load_pretrained_teacher(
    directory: Path, label_names: Sequence[str], task: Task = CLASSIFICATION, keep_head: bool = False
) -> PreTrainedModel:
    """The teacher as `task`'s model class: with its own fine-tuned head (`keep_head`), or with a
    fresh head whose outputs are `label_names`; refusing weights its config does not describe (`check_teacher_weights`,
    here for any weight format).

    Raises:
        UserInputError: config and weights disagree.
    """
    options: dict[str, Any] = {"local_files_only": True, "output_loading_info": True}
    if task.labelled and not keep_head:
        options.update(num_labels=len(label_names), problem_type=task.problem_type)
        if task.name != "regression":  # the head's outputs carry the data's label names, as the export writes them
            options.update(id2label=dict(enumerate(label_names)), label2id={name: i for i, name in enumerate(label_names)})
    try:
        model, info = _auto_class(task).from_pretrained(directory, **options)
    except SafetensorError as e:  # a copy cut short, or not a safetensors file
        raise UserInputError(f"weights of {directory} cannot be read ({e}): copy model.safetensors again.") from e
    except pickle.UnpicklingError as e:  # torch.load(weights_only=True) met objects other than tensors in a .bin
        raise UserInputError(
            f"teacher directory {directory}: its .bin weights hold pickled objects other than tensors, which bortnas never "
            "unpickles (they could run code); save the model again with save_pretrained (safetensors)."
        ) from e
    except RuntimeError as e:  # transformers refuses tensors of another shape
        raise UserInputError(f"teacher directory {directory}: config.json and the weights disagree: tensors of another shape.") from e
    prefix, prefixes = model.base_model_prefix, family_of(model.config).body_prefixes
    buffers = {b for name, _ in model.named_buffers() if (b := body_key(name, prefix, prefixes))}

    def body(keys: set[str]) -> set[str]:
        return {b for k in keys if (b := body_key(k, prefix, prefixes))} - buffers

    missing = set(info["missing_keys"])
    if keep_head and missing - {k for k in missing if body_key(k, prefix, prefixes)}:
        raise UserInputError(
            f"teacher directory {directory}: its task head's weights are missing ({min(missing)}); save the fine-tuned model again."
        )
    raise_on_disagreement(directory, body(missing), body(set(info["unexpected_keys"])), set())
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
    """The task teacher (fine-tuned here, or the user's own head kept as it is), its tokenizer,
    unit importance scores and its metrics on dev and test."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    importance: Importance
    dev_metrics: dict[str, float]
    test_metrics: dict[str, float]
    key: str
    source_hash: str
    path: Path
    task: Task = CLASSIFICATION
    fine_tuned_steps: int = 0  # steps bortnas trained it for; 0: the user's model as given

    @property
    def dev_score(self) -> float:
        """The headline metric on dev: the reference of every trial's accuracy drop."""
        return self.dev_metrics[self.task.metric]


def _importance(model: PreTrainedModel, split: EncodedSplit, objective: Objective, device: Device) -> Importance:
    def loss(m: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        out = objective.forward_of(m)(**inputs)
        return objective.importance_loss(objective.output(out, batch["attention_mask"]), batch["labels"])

    sample = split.subset(range(min(IMPORTANCE_EXAMPLES, len(split))))
    # in fp32 (no autocast): the ranking of nearly equal units should not depend on the device
    return compute_importance(model, (device.put(batch) for batch in sample.batches(32)), loss)


def _fine_tune(
    directory: Path,
    objective: Objective,
    keep_head: bool,
    train_split: EncodedSplit,
    config: TrainConfig,
    show_progress_bar: bool,
    device: Device,
) -> PreTrainedModel:
    """The teacher loaded for the task on `device` and trained for `config.steps` steps (none: as it is)."""
    torch.manual_seed(config.seed)
    model = load_pretrained_teacher(directory, objective.label_names, objective.task, keep_head=keep_head)
    check_supported(model.config, str(directory))
    model.to(device.torch_device)  # type: ignore[arg-type]  # transformers wraps .to; typeshed does not bind self
    if config.steps:
        _logger.info("fine-tuning the teacher on the task (%d steps)", config.steps)
        train(
            model,
            train_split,
            config,
            show_progress_bar=show_progress_bar,
            description="fine-tune teacher",
            device=device,
            objective=objective,
        )
    else:
        _logger.info("using the teacher as it is for %s (no fine-tuning)", objective.task.name)
    return model


def prepare_teacher(
    directory: Path,
    tokenizer: PreTrainedTokenizerBase,
    objective: Objective,
    train_split: EncodedSplit,
    dev_split: EncodedSplit,
    test_split: EncodedSplit,
    data_fingerprint: str,
    config: TrainConfig,
    cache_dir: Path,
    keep_head: bool = False,
    show_progress_bar: bool = False,
    device: Device = CPU,
) -> TaskTeacher:
    """The task teacher on `device`: `directory`'s own head kept (`keep_head`), fine-tuned further
    for `config.steps` steps when that is not 0, with its unit importance and dev / test metrics.

    A teacher bortnas trained is cached with its importance (a second search reuses both); a
    teacher used as it is is read from `directory` every time and only its importance and metrics
    are cached. The cache key names the recipe (files, data, task, settings), not the device: a
    teacher fine-tuned on a GPU in bf16 is reused on a CPU and the reverse. An embedding teacher's dev and
    test embeddings become the splits' `reference`, which its students are scored against.
    """
    source_hash = teacher_files_hash(directory)
    task = objective.task
    recipe: dict[str, Any] = {"v": CACHE_VERSION, "data": data_fingerprint, "labels": len(objective.label_names), "train": config.to_dict()}
    if task.name != "classification" or keep_head:
        recipe.update(task=task.name, keep_head=keep_head)
    settings = json.dumps(recipe, sort_keys=True)
    key = hashlib.sha256(f"{source_hash}:{settings}".encode()).hexdigest()[:16]
    entry = cache_dir / "teachers" / key
    trained = config.steps > 0

    def score(model: PreTrainedModel, split: EncodedSplit) -> dict[str, float]:
        if not task.labelled:  # an embedding or general model is scored against the teacher's own outputs: set them first
            outputs = task_outputs(model, split, objective, None, device)
            # the general objective's per-token states differ in length: padded with zeros
            split.reference = pad_sequence(outputs, batch_first=True) if outputs and outputs[0].dim() == 2 else torch.stack(outputs)
        return evaluate(model, split, device=device, objective=objective).metrics

    if (entry / "meta.json").is_file():
        _logger.info("reusing the task teacher %s from %s", key, entry)
        source = entry if trained else directory
        model = _auto_class(task).from_pretrained(source, local_files_only=True).to(device.torch_device).eval()
        meta = json.loads((entry / "meta.json").read_text())
        importance = Importance(**load_file(str(entry / "importance.safetensors")))
        dev, test = meta.get("dev_metrics", {"accuracy": meta.get("dev_accuracy")}), meta.get("test_metrics", {})
        if not test or not task.labelled:  # an entry from before teachers were tested; an embedding teacher's references
            dev, test = score(model, dev_split), score(model, test_split)
        return TaskTeacher(model, tokenizer, importance, dev, test, key, source_hash, entry, task, config.steps)

    # refused before the fine-tuning, not after it: the entry holds the weights (when fine-tuned) and small importance scores
    entry.parent.mkdir(parents=True, exist_ok=True)
    weights = sum(f.stat().st_size for pattern in ("*.safetensors", "*.bin") for f in directory.glob(pattern))
    needed = (weights if trained else 0) + HEADROOM_BYTES
    check_free_space(entry.parent, needed, f"caching the teacher in {entry}")
    model = _fine_tune(directory, objective, keep_head, train_split, config, show_progress_bar, device)
    model.eval()
    dev, test = score(model, dev_split), score(model, test_split)
    importance = _importance(model, train_split, objective, device)

    staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=entry.parent))
    try:
        if trained:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        save_file({k: v.contiguous() for k, v in importance.state_dict().items()}, str(staging / "importance.safetensors"))
        meta = {
            "dev_metrics": dev,
            "test_metrics": test,
            "source": str(directory),
            "source_hash": source_hash,
            "settings": json.loads(settings),
        }
        if task.name == "classification":
            meta["dev_accuracy"] = dev["accuracy"]  # what caches before the task existed held
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
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if is_disk_full(e):
            raise disk_full_error(entry.parent, needed, f"caching the teacher in {entry}") from e
        raise
    return TaskTeacher(model, tokenizer, importance, dev, test, key, source_hash, entry, task, config.steps)
