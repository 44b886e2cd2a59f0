"""Shared fixtures and helpers: tiny random teachers of every supported family with tokenizers, a small labelled
task, a scored study without training, and the CLI in a subprocess with the tiny search's arguments.

Test modules import the helpers as `from conftest import ...` (pytest puts tests/ on sys.path for this conftest),
which gives the very module pytest loaded, under xdist too.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import optuna

    from bortnas.core.settings import RunSettings

REPO = Path(__file__).resolve().parents[1]

# Every subprocess a test starts (the CLI, the benchmarks, Ray's workers) imports this checkout's bortnas, not
# whichever copy is installed: the checkout goes first on PYTHONPATH, which child processes inherit.
if os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] != str(REPO):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

# Under pytest-xdist the workers share the machine's cores: each worker (and what it starts, which inherits the
# variable) gets its share of intra-op threads, unless the caller chose a number. Toy models gain nothing from more
# threads, and threads spinning on a busy core cost minutes.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

POSITIVE = ["good", "great", "fun", "love", "best", "moving", "superb"]
NEGATIVE = ["bad", "awful", "boring", "hate", "worst", "dull", "mess"]
FILLER = ["the", "a", "movie", "film", "plot", "actor", "was", "is", "and", "story", "very", "quite", "really", "scene"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER]


def write_tokenizer(directory: Path) -> None:
    from transformers import BertTokenizerFast

    BertTokenizerFast(vocab={word: i for i, word in enumerate(VOCAB)}, do_lower_case=True).save_pretrained(directory)


FAMILIES = ("bert", "roberta", "xlm-roberta", "electra", "distilbert", "mpnet", "deberta-v2", "modernbert")


def tiny_config(family: str, **overrides: object) -> object:
    """A 2-layer (ModernBERT: 3, so both attention types occur), hidden-32, 4-head, FFN-64 random
    config of `family` with its particular parts switched on, built offline."""
    import transformers as tf

    common: dict[str, object] = dict(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.2,
        pad_token_id=0,
    )
    builders = {
        "bert": lambda: tf.BertConfig(**common, type_vocab_size=2),
        "roberta": lambda: tf.RobertaConfig(**common, type_vocab_size=1),
        "xlm-roberta": lambda: tf.XLMRobertaConfig(**common, type_vocab_size=1),
        "electra": lambda: tf.ElectraConfig(**common, embedding_size=16, type_vocab_size=2),
        "mpnet": lambda: tf.MPNetConfig(**common),  # 32 relative buckets: MPNet computes buckets for 32 whatever the table
        "deberta-v2": lambda: tf.DebertaV2Config(
            **common,
            type_vocab_size=0,
            relative_attention=True,
            pos_att_type=["p2c", "c2p"],
            position_buckets=8,
            max_relative_positions=16,
            share_att_key=True,
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
        ),
        "distilbert": lambda: tf.DistilBertConfig(
            vocab_size=len(VOCAB),
            dim=32,
            n_layers=2,
            n_heads=4,
            hidden_dim=64,
            max_position_embeddings=64,
            dropout=0.0,
            attention_dropout=0.0,
            initializer_range=0.2,
            pad_token_id=0,
        ),
        "modernbert": lambda: tf.ModernBertConfig(
            vocab_size=len(VOCAB),
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            global_attn_every_n_layers=2,
            local_attention=8,
            initializer_range=0.2,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            cls_token_id=2,
            sep_token_id=3,
        ),
    }
    config = builders[family]()
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def make_teacher(directory: Path, family: str = "bert", seed: int = 0, **overrides: object) -> Path:
    """A tiny random encoder of `family` (`tiny_config`) saved with a word-level tokenizer."""
    import torch
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_config(tiny_config(family, **overrides))
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    write_tokenizer(directory)
    return directory


def make_task(path: Path, rows: int = 240, seed: int = 0) -> Path:
    """Sentences whose label is whether they hold more positive than negative words."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "sentiment"])
        for _ in range(rows):
            label = rng.random() < 0.5
            words = rng.choices(FILLER, k=rng.randint(3, 8)) + rng.choices(POSITIVE if label else NEGATIVE, k=2)
            rng.shuffle(words)
            writer.writerow([" ".join(words), "pos" if label else "neg"])
    return path


def tiny_settings(teacher: Path, task: Path, **overrides: object) -> RunSettings:
    """RunSettings of the tiny task (`make_task`'s columns) on `teacher`; `overrides` set the training knobs."""
    from bortnas.core.settings import RunSettings

    return RunSettings(teacher=str(teacher), data=str(task), text_column="sentence", label_column="sentiment", **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_teacher(tmp_path_factory.mktemp("tiny_bert"), "bert")


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_teacher(tmp_path_factory.mktemp("tiny_roberta"), "roberta")


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_task(tmp_path_factory.mktemp("task") / "reviews.csv")


@pytest.fixture()
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text("name: tiny\nlayers: [1, 2]\nhidden: [16, 32]\nheads: [2, 4]\nffn: [32, 64]\n")
    return path


# Scored trials without training: (layers, hidden, heads, ffn, quant, p in bits, i in FLOP-equivalents, latency ms, error).
# Trials 2 (FAIL) and 4 (PRUNED) sit between them, so trial numbers and record positions differ.
FAKE_SCORES = (
    (2, 32, 4, 64, "fp32", 8.0e6, 4.0e6, 1.9, 0.10),  # trial 0: lowest error
    (1, 32, 4, 64, "fp32", 4.0e6, 2.0e6, 1.1, 0.20),  # trial 1
    (1, 16, 2, 32, "fp32", 1.2e6, 0.8e6, 0.7, 0.30),  # trial 3: argmax W
    (2, 16, 4, 64, "fp32", 5.0e6, 2.5e6, 1.3, 0.25),  # trial 5: dominated by trial 1
    (2, 32, 4, 64, "bitnet158", 0.3e6, 0.2e6, 1.6, 0.45),  # trial 6: smallest p and i, highest error (`make_scored_study`'s mode)
    (1, 16, 4, 32, "fp32", 1.5e6, 1.0e6, 0.9, 0.32),  # trial 7: dominated by trial 3
)
FAKE_FRONT = (0, 1, 3, 6)
FAKE_TEACHER_DEV_ACCURACY = 0.85  # so the trials' dev accuracy is 5 points above (trial 0) to 30 below (trial 6) it
FAKE_BEST = 3


def make_scored_study(storage_url: str, name: str = "fake", quantized: str = "bitnet158") -> None:
    """A bortnas study `name` holding FAKE_SCORES as COMPLETE trials with the attributes `score_candidate` stores, plus trial 2
    FAILED and trial 4 PRUNED; no training. Trial 6 is of mode `quantized`."""
    import optuna

    from bortnas.algo.objective import w_coefficient
    from bortnas.core.settings import RunSettings
    from bortnas.core.space import ArchSpec, parse_search_space
    from bortnas.search import create_or_resume
    from bortnas.search.storage import open_storage

    space = parse_search_space(
        {"name": name, "layers": [1, 2], "hidden": [16, 32], "heads": [2, 4], "ffn": [32, 64], "quant": ["fp32", quantized]},
        "make_scored_study",
    )
    study = create_or_resume(open_storage(storage_url), name, space, RunSettings(), optuna.samplers.RandomSampler(seed=0))
    scores = iter(FAKE_SCORES)
    for number in range(len(FAKE_SCORES) + 2):
        trial = study.ask()
        if number == 2:
            trial.set_user_attr("fail_reason", "training diverged: loss is nan at step 1 of 8")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        if number == 4:
            trial.set_user_attr("skip_reason", "repeats finished trial 0")
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        layers, hidden, heads, ffn, quant, p, i, latency_ms, error = next(scores)
        spec = ArchSpec(layers=layers, hidden=hidden, heads=heads, ffn=ffn, quant=quantized if quant != "fp32" else quant)
        w = w_coefficient(p, i, error, 10.0e6, 5.0e6)
        attrs = {
            "params_total": int(p / 32) + 1000,
            "params_non_embedding": int(p / 32),
            "size_bits_non_embedding": p,
            "size_mib": (p + 32_000) / 8 / 2**20,
            "flops": i,
            "latency_ms": latency_ms,
            "dev_score": 1.0 - error,
            "error": error,
            "w": w,
            "steps": 8,
            "seed": 0,
            "seconds": 0.5,
            "candidate": spec.to_dict(),
            "arch_id": spec.arch_id,
            "key": spec.key,
            "teacher_dev_score": FAKE_TEACHER_DEV_ACCURACY,
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, w)


@pytest.fixture(scope="session", autouse=True)
def _private_teacher_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """$BORTNAS_CACHE in this session's (under xdist: this worker's) temp dir, so that a test that names no cache
    of its own never writes the user's ~/.cache/bortnas; the tests that name one (most) keep theirs."""
    saved = os.environ.get("BORTNAS_CACHE")
    os.environ["BORTNAS_CACHE"] = str(tmp_path_factory.mktemp("bortnas_cache"))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("BORTNAS_CACHE", None)
        else:
            os.environ["BORTNAS_CACHE"] = saved


# The CLI in a subprocess ------------------------------------------------------------------------------------------


def cli_env(cwd: Path, **extra: str) -> dict[str, str]:
    """This process's environment with the teacher cache in `cwd`/cache and `extra` on top."""
    return {**os.environ, "BORTNAS_CACHE": str(cwd / "cache"), **extra}


def bortnas(
    *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """`python -m bortnas ARGS` in `cwd` with its teacher cache in `cwd`/cache (`env` replaces the whole environment);
    `check`: a non-zero exit fails the test with the command's stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "bortnas", *args], cwd=cwd, env=env or cli_env(cwd), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"bortnas {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def search_args(
    teacher: Path,
    task: Path,
    space: Path,
    *extra: str,
    strategy: str | None = "tpe",
    trial_steps: int | None = 8,
    teacher_steps: int = 40,
    quiet: bool = True,
) -> list[str]:
    """`search` on the tiny teacher and task: argv for `bortnas(...)`. `extra` comes last, so a flag in it replaces
    the same flag here. `strategy` / `trial_steps` None leave the flag out (FPTAS refuses --trial-steps)."""
    return [
        "search",
        *("--space", str(space), "--teacher", str(teacher), "--data", str(task)),
        *("--text-column", "sentence", "--label-column", "sentiment"),
        *("--teacher-steps", str(teacher_steps), "--teacher-lr", "3e-3", "--lr", "3e-3"),
        *(("--strategy", strategy) if strategy is not None else ()),
        *(("--trial-steps", str(trial_steps)) if trial_steps is not None else ()),
        *("--batch-size", "16", "--max-length", "24"),
        *(("-q",) if quiet else ()),
        *extra,
    ]


def completed(storage: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    """The COMPLETE trials of `study` in the SQLite file `storage`."""
    import optuna

    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{storage}")
    return loaded.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's notation, e.g. "1m") mounted at `directory` while the block runs: a disk that fills up."""
    directory.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True, capture_output=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True, capture_output=True)


def record_fault(fault: str, **figures: object) -> None:
    """One row of the reliability table (`benchmarks/faults.py`): appended to $BORTNAS_FAULT_LOG when it is set."""
    path = os.environ.get("BORTNAS_FAULT_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"fault": fault, **figures}) + "\n")


def study_figures(storage: str, study: str, before: dict[int, str], recover_s: float | None) -> dict[str, object]:
    """The reliability table's figures of `study` after a fault: trials that ran a candidate, finished ones, finished
    trials of `before` (number -> candidate, taken before the fault) now missing, candidates finished more than once."""
    import optuna

    trials = [t for t in optuna.load_study(study_name=study, storage=storage).get_trials() if "arch_id" in t.user_attrs]
    done = {t.number: t.user_attrs["arch_id"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE}
    return {
        "trials": len(trials),
        "finished": len(done),
        "lost": len(before.items() - done.items()),
        "counted_twice": len(done) - len(set(done.values())),
        "recover_s": recover_s,
    }


def wait_for_new_finish(
    storage: str, study: str, known: set[int], since: float, timeout: float = 300, workers: Sequence[subprocess.Popen] = ()
) -> float:
    """Seconds from `since` (time.monotonic()) until a trial not in `known` is COMPLETE: the time to recover from a fault.
    Fails at once, with its stderr, if one of `workers` exits meanwhile."""
    import time

    import optuna

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.poll() is not None:
                raise AssertionError(f"a worker exited {worker.returncode} before recovering:\n{worker.communicate()[1][-3000:]}")
        try:
            complete = optuna.load_study(study_name=study, storage=storage).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        except Exception:  # the database itself may be what is down
            complete = []
        if {t.number for t in complete} - known:
            return time.monotonic() - since
        time.sleep(0.2)
    raise AssertionError(f"no trial of {study} finished within {timeout} s of the fault")


def one_line_error(proc: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    """The command exited `code` with one line on stderr, no traceback, holding `fragment`."""
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0], lines[0]


# Reloading an exported directory in a fresh process ----------------------------------------------------------------

RELOAD = """
import csv, json, random, sys, torch
if {stock}:
    sys.modules['bortnas'] = None  # stock transformers alone must load it
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained({directory!r}).eval()
else:
    import bortnas
    model = bortnas.load({directory!r})
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained({directory!r})
rows = list(csv.DictReader(open({task!r})))
random.Random(0).shuffle(rows)
n = len(rows); dev = rows[n - 2 * round(n * 0.1): n - round(n * 0.1)]
labels = sorted({{r['sentiment'] for r in rows}})
enc = tok([r['sentence'] for r in dev], padding=True, truncation=True, max_length=24, return_tensors='pt')
with torch.no_grad():
    pred = model(**enc).logits.argmax(-1)
acc = sum(int(p) == labels.index(r['sentiment']) for p, r in zip(pred, dev)) / len(dev)
print(json.dumps({{'acc': acc, 'type': type(model).__name__, 'id2label': model.config.id2label}}))
"""


def reload_exported(directory: Path, task: Path, stock: bool) -> dict[str, object]:
    """Load an exported `directory` in a fresh process, by stock transformers without bortnas (`stock`) or by
    `bortnas.load`, and score it on `task`'s dev split as the search split it: {'acc', 'type', 'id2label'}."""
    import json

    script = RELOAD.format(stock=stock, directory=str(directory), task=str(task))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]
