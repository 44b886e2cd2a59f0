"""The evaluation context that run settings build: task data, task teacher, tokenized splits.

Torch layer (through the teacher). A study stores its `RunSettings` (`bortnas.core.settings`), so
`export` and a resumed search rebuild exactly the same context from the database alone. The device is chosen per
process (`bortnas.runtime.device`), not stored: it changes how fast a trial runs, not what it means.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bortnas.core.errors import ParameterError, UserInputError
from bortnas.core.settings import DEFAULT_TEACHER_STEPS, RunSettings
from bortnas.core.space import TeacherShape
from bortnas.core.tasks import TASKS, Task, teacher_task
from bortnas.data.corpus import load_corpus
from bortnas.data.encode import EncodedSplit, encode
from bortnas.data.masking import mask_tokens
from bortnas.data.sentence_dirs import Pooling, is_sentence_transformers_dir, read_pooling
from bortnas.data.tasks import TaskData, align_labels, infer_table_task, load_rotten_tomatoes, load_table, load_tagged, read_table
from bortnas.families import family_of
from bortnas.families.teacher_dirs import read_teacher_config, teacher_shape
from bortnas.runtime.device import CPU, Device
from bortnas.train.objectives import Objective
from bortnas.train.teacher_cache import TeacherCache
from bortnas.trial.teacher import TaskTeacher, check_teacher_weights, load_teacher_config, prepare_teacher

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedTokenizerBase

_logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("BORTNAS_CACHE", Path.home() / ".cache" / "bortnas"))


TOKEN_SUFFIXES = (".conll", ".iob", ".bio")  # a file that can only hold tagged words


def infer_task(settings: RunSettings, teacher_config: dict[str, Any]) -> str:
    """The task of a search whose settings leave it open: the teacher's head says it where it has
    one; else a CoNLL file is token classification and a table what its labels imply
    (`infer_table_task`); the default reviews are classification."""
    head_task = teacher_task(teacher_config)
    if head_task is not None:
        return head_task.name
    if settings.data is None:
        return "classification"
    path = Path(settings.data)
    if path.suffix.lower() in TOKEN_SUFFIXES:
        return "token_classification"
    return infer_table_task(read_table(path, encoding=settings.encoding), settings.label_column)


def load_task(settings: RunSettings, task: str | None = None) -> TaskData:
    """The settings' data read as `task` (default: the settings' task, else classification)."""
    task = task or settings.task or "classification"
    if task == "general":
        return load_corpus(settings.corpus, settings.text_column, seed=settings.data_seed, encoding=settings.encoding)
    if settings.data is None:
        if task != "classification":
            raise ParameterError("data", f" is needed for task {task!r}: the bundled reviews are a classification task; pass a file.")
        return load_rotten_tomatoes(seed=settings.data_seed)
    if task == "token_classification":
        return load_tagged(settings.data, seed=settings.data_seed, encoding=settings.encoding)
    return load_table(
        settings.data,
        settings.text_column,
        settings.label_column,
        settings.pair_column,
        seed=settings.data_seed,
        encoding=settings.encoding,
        task=task,
    )


def _check_task(task: str, head: Task | None, directory: Path) -> None:
    """Refuse a task the teacher's own head cannot do."""
    if head is not None and head.name != task and task != "general":  # a general encoder distils any teacher's encoder
        raise ParameterError(
            "task",
            f"={task!r} but the teacher in {directory} has a {head.name} head: leave the task out to compress it for "
            f"{head.name}, or pass a teacher without a task head.",
        )


def _teacher_steps(settings: RunSettings, task: str, head: Task | None, directory: Path) -> int:
    """The teacher's fine-tuning steps: the settings', else 0 for a teacher with a head (and for an
    embedding teacher, which is distilled as it is) and DEFAULT_TEACHER_STEPS for one without; 0
    without a head is refused, and so are steps for an embedding teacher (there are no labels)."""
    if task in ("embedding", "general"):
        if settings.teacher_steps:
            raise ParameterError(
                "teacher_steps",
                f"={settings.teacher_steps}: an embedding teacher, and any teacher of the general objective, is distilled as it is "
                "(there are no labels to fine-tune on); leave it out.",
            )
        return 0
    if settings.teacher_steps is None:
        return 0 if head is not None else DEFAULT_TEACHER_STEPS
    if settings.teacher_steps == 0 and head is None:
        raise ParameterError(
            "teacher_steps",
            f"=0 needs a teacher fine-tuned for the task, but {directory}/config.json declares no task head "
            "(architectures has no *ForSequenceClassification or *ForTokenClassification): give it fine-tuning steps.",
        )
    return settings.teacher_steps


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The teacher and the task of one command, read and checked once, before anything is written
    (no weights are loaded), then passed to everything that needs them.

    `settings` are the command's with the task and the teacher's steps settled (what a study pins);
    `keep_head`: the teacher's own task head is used.
    """

    settings: RunSettings
    teacher_dir: Path
    config: PreTrainedConfig  # the teacher's config.json
    shape: TeacherShape
    data: TaskData
    keep_head: bool = False
    pooling: Pooling | None = None  # an embedding teacher's sentence-transformers pooling
    masked_lm: bool = False  # a general teacher with a masked-LM head: Bort's masked-token distillation

    @property
    def task(self) -> Task:
        """The data's task; a general one with a masked-LM teacher loads (and exports) with its head."""
        task = TASKS[self.data.task]
        return dataclasses.replace(task, auto_class="AutoModelForMaskedLM") if self.masked_lm else task


def resolve_inputs(settings: RunSettings, data: TaskData | None = None) -> Inputs:
    """Read the teacher's config and the settings' task (or take `data`), settle the task and the
    teacher's steps, match the data's labels to a fine-tuned teacher's, check the teacher's weights.

    Raises:
        UserInputError: an unreadable or malformed data file, a teacher directory bortnas cannot use,
            labels the teacher's head does not know, a task its head cannot do.
    """
    directory = settings.teacher_dir()
    config = load_teacher_config(directory)
    raw = read_teacher_config(directory)
    head = teacher_task(raw)
    task = settings.task or (data.task if data is not None else infer_task(settings, raw))
    _check_task(task, head, directory)
    steps = _teacher_steps(settings, task, head, directory)
    data = load_task(settings, task) if data is None else data
    keep_head = head is not None and task != "general"
    if keep_head:
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        data = align_labels(data, [id2label[k] for k in sorted(id2label)], str(directory))
    # Bort's masked-token distillation needs the teacher's MLM head, which it then keeps
    masked_lm = task == "general" and any(str(name).endswith("ForMaskedLM") for name in raw.get("architectures") or [])
    keep_head = keep_head or masked_lm
    pooling = None
    if task == "general" and is_sentence_transformers_dir(directory):
        # an embedding model's general student also distils its pooled embeddings, and exports as an embedding model
        pooling = read_pooling(directory)
    if task == "embedding":
        if not is_sentence_transformers_dir(directory):
            raise ParameterError(
                "task",
                f"='embedding' needs a sentence-transformers teacher (modules.json and its pooling config), "
                f"and {directory} has no modules.json.",
            )
        pooling = read_pooling(directory)
    check_teacher_weights(directory, config)
    _check_tokenizer_file(directory)
    settled = dataclasses.replace(settings, task=task, teacher_steps=steps)
    head_kind = "token" if task == "token_classification" else "none" if task in ("embedding", "general") else "sequence"
    shape = teacher_shape(config, max(1, data.num_labels), head_kind)
    return Inputs(settled, directory, config, shape, data, keep_head, pooling, masked_lm)


def _check_tokenizer_file(directory: Path) -> None:
    """Refuse a `tokenizer.json` that does not parse now, before anything is written (the tokenizer loads later).

    Raises:
        UserInputError: naming the file.
    """
    path = directory / "tokenizer.json"
    if path.is_file():
        try:
            json.loads(path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserInputError(f"teacher directory {directory} has no usable tokenizer: {path.name} does not parse ({e}).") from None


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
