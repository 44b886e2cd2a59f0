"""The evaluation context that run settings build: task data, task teacher, tokenized splits.

Torch layer (through the teacher). A study stores its `RunSettings` (`bortnas.core.settings`), so
`export` and a resumed search rebuild exactly the same context from the database alone. The device is chosen per
process (`bortnas.runtime.device`), not stored: it changes how fast a trial runs, not what it means.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bortnas.core.errors import UserInputError
from bortnas.core.settings import RunSettings
from bortnas.core.space import TeacherShape
from bortnas.core.tasks import Task
from bortnas.data.encode import EncodedSplit, encode
from bortnas.data.masking import mask_tokens
from bortnas.data.tasks import TaskData
from bortnas.families import family_of
from bortnas.runtime.device import CPU, Device
from bortnas.train.objectives import Objective
from bortnas.train.teacher_cache import TeacherCache
from bortnas.trial.inputs import Inputs, resolve_inputs
from bortnas.trial.teacher import TaskTeacher, prepare_teacher

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("BORTNAS_CACHE", Path.home() / ".cache" / "bortnas"))


@dataclasses.dataclass
class Context:
    """What scoring and export need, built once per process; the teacher lives on `device`."""

    settings: RunSettings
    data: TaskData
    shape: TeacherShape
    teacher: TaskTeacher
    train: EncodedSplit
    dev: EncodedSplit
    test: EncodedSplit
    device: Device = CPU
    # the task teacher's outputs per training example, shared by every student distilled in this process
    teacher_cache: TeacherCache | None = None
    objective: Objective = Objective()
    cache_dir: Path | None = None  # the teacher cache's directory; exports keep their resumable state under it

    @property
    def task(self) -> Task:
        return self.objective.task


def build_context(
    settings: RunSettings,
    cache_dir: Path | None = None,
    show_progress_bar: bool = False,
    data: TaskData | None = None,
    device: Device = CPU,
    inputs: Inputs | None = None,
) -> Context:
    """Load data and tokenizer, then fine-tune (or reuse from the cache) the task teacher on `device`.

    `data` replaces the settings' task (benchmarks that cut the training split down); the
    teacher cache is keyed by the data's fingerprint, so each data set gets its own teacher.
    `inputs` are the command's already resolved teacher and task (`resolve_inputs`), read again otherwise.
    Every trial scored with the context trains, evaluates and measures latency on `device`.
    """
    from transformers import AutoTokenizer

    if inputs is None:
        inputs = resolve_inputs(settings, data)
    shape, data = inputs.shape, inputs.data
    directory = inputs.teacher_dir
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserInputError(f"teacher directory {directory} has no usable tokenizer ({e}): save one next to the model.") from e
    if not family_of(inputs.config).token_types:
        # a family without token types refuses `token_type_ids`, which a BERT tokenizer produces by default
        tokenizer.model_input_names = [name for name in tokenizer.model_input_names if name != "token_type_ids"]
    settings = inputs.settings
    mask_id = _mask_token_id(tokenizer, directory) if inputs.masked_lm else None
    objective = Objective(inputs.task, data.label_names, inputs.pooling, mask_id)
    train, dev, test = (
        encode(split, tokenizer, settings.max_length, data.task, data.num_labels) for split in (data.train, data.dev, data.test)
    )
    if mask_id is not None:  # the teacher and its students predict the same hidden tokens of each training window
        train = mask_tokens(train, mask_id, tokenizer.all_special_ids, seed=settings.seed)
    cut = sum(split.truncated for split in (train, dev, test))
    if cut:
        _logger.warning(
            "%d of %d examples are longer than max_length=%d tokens and were truncated (train %d, dev %d, test %d): "
            "raise max_length to keep them whole",
            cut,
            len(train) + len(dev) + len(test),
            settings.max_length,
            train.truncated,
            dev.truncated,
            test.truncated,
        )
    teacher = prepare_teacher(
        directory,
        tokenizer,
        objective,
        train,
        dev,
        test,
        data.fingerprint(),
        settings.teacher_train_config(),
        cache_dir or default_cache_dir(),
        keep_head=inputs.keep_head,
        show_progress_bar=show_progress_bar,
        device=device,
    )
    _logger.info(
        "task teacher (%s, %s): dev %s, test %s (%s)",
        inputs.task.name,
        f"fine-tuned {teacher.fine_tuned_steps} steps" if teacher.fine_tuned_steps else "used as it is",
        _shown(teacher.dev_metrics),
        _shown(teacher.test_metrics),
        data.source,
    )
    return Context(
        settings,
        data,
        shape,
        teacher,
        train,
        dev,
        test,
        device=device,
        teacher_cache=TeacherCache(teacher.model, train),
        objective=objective,
        cache_dir=cache_dir or default_cache_dir(),
    )


def _mask_token_id(tokenizer: PreTrainedTokenizerBase, directory: Path) -> int:
    if tokenizer.mask_token_id is None:
        raise UserInputError(
            f"teacher directory {directory} has a masked-LM head but its tokenizer no mask token: save the tokenizer it was trained with."
        )
    return int(tokenizer.mask_token_id)


def _shown(metrics: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.4f}" for name, value in metrics.items())
