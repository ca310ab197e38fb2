"""The toy task and the one-layer attention model that chapter 3 trains."""

from __future__ import annotations

import pytest
import torch

from course.datasets.tasks import IGNORE, OneLayerAttention, accuracy, copy_task, train


@pytest.mark.parametrize("offset", [-1, -3, 1, 2])
def test_targets_are_the_token_offset_places_away(offset):
    inputs, targets = copy_task(5, seq_len=9, vocab_size=7, offset=offset, seed=3)
    assert inputs.dtype == targets.dtype == torch.long
    assert inputs.shape == targets.shape == (5, 9)
    for i in range(9):
        j = i + offset
        if 0 <= j < 9:
            assert torch.equal(targets[:, i], inputs[:, j])
        else:
            assert (targets[:, i] == IGNORE).all()


def test_copy_task_is_seeded_and_validates():
    a, _ = copy_task(4, seed=1)
    b, _ = copy_task(4, seed=1)
    c, _ = copy_task(4, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.max()) < 16 and int(a.min()) >= 0
    with pytest.raises(ValueError, match="offset"):
        copy_task(4, seq_len=5, offset=5)
    with pytest.raises(ValueError, match="offset"):
        copy_task(4, offset=0)
    with pytest.raises(TypeError, match="n_sequences"):
        copy_task(4.0)


def test_model_shapes_mask_and_ablations():
    model = OneLayerAttention(vocab_size=11, seq_len=6, d_model=16, n_heads=2)
    tokens = torch.randint(11, (3, 6))
    logits, weights = model(tokens, need_weights=True)
    assert logits.shape == (3, 6, 11) and weights.shape == (3, 2, 6, 6)
    assert torch.all(weights.triu(1) == 0), "the causal mask lets a position see the future"
    _, open_weights = model(tokens, causal=False, need_weights=True)
    assert open_weights.triu(1).sum() > 0
    shared = OneLayerAttention(11, 6, 16, 2, shared_qk=True)
    assert shared.attention.key is shared.attention.query
    unscaled = OneLayerAttention(11, 6, 16, 2, scaled=False)
    x = torch.randn(1, 6, 16)
    base = unscaled.attention.query[0](x)
    assert torch.allclose(unscaled.attention.query(x), base * 16 ** 0.5 / 2 ** 0.5)
    with pytest.raises(ValueError, match="tokens"):
        model(torch.randint(11, (3, 7)))


def test_training_learns_to_copy_the_previous_token_quickly():
    result = train(steps=150, snapshot_steps=(0, 150))
    assert result.accuracy > 0.95, result.accuracy
    assert result.losses[-1] < 0.2 < result.losses[0]
    assert result.seconds < 30
    assert sorted(result.snapshots) == [0, 150]
    final = result.snapshots[150]                                  # (H, T, T)
    assert final.diagonal(offset=-1, dim1=1, dim2=2).mean(-1).max() > 0.8


def test_next_token_is_out_of_reach_under_the_mask():
    inputs, targets = copy_task(500, offset=1, seed=5)
    result = train(offset=1, steps=60)
    assert accuracy(result.model, inputs, targets) < 0.15    # chance is 1/16
