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
from bortnas.data.encode import EncodedSplit, encode
from bortnas.data.tasks import TaskData, load_rotten_tomatoes, load_table
from bortnas.families import family_of
from bortnas.families.teacher_dirs import teacher_shape
from bortnas.runtime.device import CPU, Device
from bortnas.train.teacher_cache import TeacherCache
from bortnas.trial.teacher import TaskTeacher, check_teacher_weights, load_teacher_config, prepare_teacher

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

_logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("BORTNAS_CACHE", Path.home() / ".cache" / "bortnas"))


def load_task(settings: RunSettings) -> TaskData:
    if settings.data is None:
        return load_rotten_tomatoes(seed=settings.data_seed)
    return load_table(
        settings.data,
        settings.text_column,
        settings.label_column,
        settings.pair_column,
        seed=settings.data_seed,
        encoding=settings.encoding,
    )


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The teacher and the task of one command, read and checked once, before anything is written
    (no weights are loaded), then passed to everything that needs them."""

    settings: RunSettings
    teacher_dir: Path
    config: PreTrainedConfig  # the teacher's config.json
    shape: TeacherShape
    data: TaskData


def resolve_inputs(settings: RunSettings, data: TaskData | None = None) -> Inputs:
    """Read the settings' task (or take `data`) and the teacher's config, and check the teacher's weights.

    Raises:
        UserInputError: an unreadable or malformed data file, a teacher directory bortnas cannot use.
    """
    data = load_task(settings) if data is None else data
    directory = settings.teacher_dir()
    config = load_teacher_config(directory)
    check_teacher_weights(directory, config)
    return Inputs(settings, directory, config, teacher_shape(config, data.num_labels), data)


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
    train, dev, test = (encode(split, tokenizer, settings.max_length) for split in (data.train, data.dev, data.test))
    teacher = prepare_teacher(
        directory,
        tokenizer,
        data.num_labels,
        train,
        dev,
        data.fingerprint(),
        settings.teacher_train_config(),
        cache_dir or default_cache_dir(),
        show_progress_bar=show_progress_bar,
        device=device,
    )
    _logger.info("task teacher dev accuracy %.4f (%s)", teacher.dev_accuracy, data.source)
    return Context(settings, data, shape, teacher, train, dev, test, device=device, teacher_cache=TeacherCache(teacher.model, train))
