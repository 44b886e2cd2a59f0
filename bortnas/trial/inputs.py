"""The inputs of one command: the teacher directory and the task data, read and checked before anything is written.

Imports neither torch nor transformers. The flags and the data are checked first, against the
teacher's config.json read as JSON; transformers' config reader (which imports torch) and the
weights check (the model built on the meta device) come last. So a bad data file or flag is
refused in about a second, before the command's heavy imports (`bortnas.trial.context`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bortnas.core.errors import ParameterError, UnsupportedArchitectureError, UserInputError
from bortnas.core.settings import DEFAULT_TEACHER_STEPS, RunSettings
from bortnas.core.space import TeacherShape
from bortnas.core.tasks import TASKS, Task, teacher_task
from bortnas.data.corpus import load_corpus
from bortnas.data.sentence_dirs import Pooling, is_sentence_transformers_dir, read_pooling
from bortnas.data.tasks import TaskData, align_labels, infer_table_task, load_rotten_tomatoes, load_table, load_tagged, read_table
from bortnas.families import SUPPORTED_MODEL_TYPES, family_of
from bortnas.families.teacher_dirs import check_supported, read_teacher_config, teacher_shape

if TYPE_CHECKING:
    from transformers import PreTrainedConfig


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


def body_key(key: str, prefix: str, body: tuple[str, ...]) -> str | None:
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
    import torch
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
            stored = {b: tuple(weights.get_slice(k).get_shape()) for k in weights.keys() if (b := body_key(k, prefix, body))}
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise UserInputError(f"teacher weights {path} cannot be read ({e}).") from e
    mismatched = {k for k in set(expected) & set(stored) if expected[k] != stored[k]}
    raise_on_disagreement(directory, set(expected) - set(stored), set(stored) - set(expected) - buffers, mismatched)


def raise_on_disagreement(directory: Path, missing: set[str], unexpected: set[str], mismatched: set[str]) -> None:
    """One error naming every way the weights and the config disagree; the teacher loader
    (`bortnas.trial.teacher`) raises it too, for weights only a load can read (`pytorch_model.bin`)."""
    problems = [
        f"{len(keys)} {what} (e.g. {min(keys)})"
        for keys, what in ((missing, "weights missing"), (unexpected, "unexpected weights"), (mismatched, "weights of another shape"))
        if keys
    ]
    if problems:
        raise UserInputError(f"teacher directory {directory}: config.json and the weights disagree: {'; '.join(problems)}.")


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
    raw = read_teacher_config(directory)
    head = teacher_task(raw)
    task = settings.task or (data.task if data is not None else infer_task(settings, raw))
    _check_task(task, head, directory)
    steps = _teacher_steps(settings, task, head, directory)
    data = load_task(settings, task) if data is None else data
    config = load_teacher_config(directory)  # transformers' config reader imports torch: after the cheap checks
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
