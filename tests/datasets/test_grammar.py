"""The grammar corpus: its closed-form entropy agrees with itself, with brute force and with
the words it generates."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from course.datasets.grammar import Grammar

G = Grammar()


def test_two_closed_forms_agree():
    # stationary-distribution form == renewal form (sentence entropy / sentence length)
    h = G.entropy_rate()
    assert h == pytest.approx(G.entropy_per_sentence() / G.mean_sentence_length(), rel=1e-12)
    assert 0.5 < h < math.log(G.vocab_size)
    assert G.entropy_per_char() == pytest.approx(h / G.mean_chars_per_word(), rel=1e-12)


def test_closed_form_matches_brute_force_on_a_tiny_grammar():
    # two states, hand-computable: pi = (2/3, 1/3); h = 2/3 * H(1/2, 1/2) + 1/3 * 0
    rules = {"A": [(0.5, "x", "A"), (0.5, "y", "B")], "B": [(1.0, "z", "A")]}
    g = Grammar(rules, start="A")
    assert g.entropy_rate() == pytest.approx(2 / 3 * math.log(2), rel=1e-12)
    # brute force: H(X_1..X_n) / n over all sequences of length n tends to h
    n, total = 8, 0.0
    for seq in itertools.product(range(g.vocab_size), repeat=n):
        try:
            lp = float(g.log_prob(list(seq)).sum())
        except ValueError:
            continue
        total -= math.exp(lp) * lp
    # H(X_1..X_n) = sum over steps of the entropy of the current state, from the start state
    P, Hs = g.transition_matrix(), g.state_entropies()
    dist, exact = torch.zeros(2, dtype=torch.float64), 0.0
    dist[g.start_id] = 1.0
    for _ in range(n):
        exact += float(dist @ Hs)
        dist = dist @ P
    assert total == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_empirical_loss_converges_to_the_entropy_rate(seed):
    ids, logp = G.sample(200_000, seed=seed)
    nll = -logp
    # standard error of the mean from blocks of 1,000 words (words are correlated)
    blocks = nll[: len(nll) // 1000 * 1000].view(-1, 1000).mean(1)
    se = float(blocks.std() / math.sqrt(len(blocks)))
    assert abs(float(nll.mean()) - G.entropy_rate()) < 4 * se + 1e-3
    # the sampler's log-probabilities are the grammar's
    assert torch.allclose(G.log_prob(ids[:5000]), logp[:5000])


def test_sampling_is_seeded_and_text_round_trips():
    a, b = G.corpus(500, seed=3), G.corpus(500, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, G.corpus(500, seed=4))
    assert G.encode(G.text(a)) == a.tolist()
    assert G.text(G.encode("a cat sleeps .")) == "a cat sleeps .\n"


def test_agreement_holds_in_generated_sentences():
    from course.datasets.grammar import INTRANSITIVE, NOUNS_PL, NOUNS_SG, TRANSITIVE

    verbs = {v: n for n in ("sg", "pl") for v in INTRANSITIVE[n] + TRANSITIVE[n]}
    text = G.text(G.corpus(20_000, seed=5))
    for sentence in text.splitlines()[:-1]:
        words = sentence.split()
        subject = next(w for w in words if w in NOUNS_SG + NOUNS_PL)
        verb = next(w for w in words if w in verbs)
        assert verbs[verb] == ("pl" if subject in NOUNS_PL else "sg"), sentence


def test_window_floor_is_the_exact_conditional_loss():
    ids, logp = G.sample(50_000, seed=7)
    starts = torch.arange(1000, 49_000, 331)
    x = torch.stack([ids[s: s + 33] for s in starts.tolist()])
    floor = G.window_floor(x)
    assert floor.shape == (len(starts), 32)
    # the window's loss sits above the entropy rate, most of it in the first few positions
    assert floor.mean() > G.entropy_rate() - 0.05
    assert floor[:, :3].mean() > floor[:, 16:].mean()
    # given the whole corpus from its start the loss is the sampler's; a window that starts at
    # a sentence start knows the state after its first word ".", so the two agree afterwards
    dots = (ids[:40] == G.stoi["."]).nonzero().flatten()
    first = int(dots[0])
    window = ids[first: first + 30][None]
    assert torch.allclose(G.window_floor(window)[0], -logp[first + 1: first + 30])


def test_bad_grammars_and_inputs_are_refused():
    with pytest.raises(ValueError, match="sum to 1"):
        Grammar({"A": [(0.5, "x", "A")]}, start="A")
    with pytest.raises(ValueError, match="unifilar"):
        Grammar({"A": [(0.5, "x", "A"), (0.5, "x", "A")]}, start="A")
    with pytest.raises(ValueError, match="unknown state"):
        Grammar({"A": [(1.0, "x", "B")]}, start="A")
    with pytest.raises(ValueError, match="n_words"):
        G.sample(0)
    with pytest.raises(ValueError, match="cannot follow"):
        G.log_prob([G.stoi["cat"]])
    with pytest.raises(ValueError, match="not a word"):
        G.encode("the unicorn sleeps .")


def test_windows_and_model_nll_follow_the_batch_layout():
    from torch import nn

    from course.datasets.grammar import model_nll, windows

    ids = G.corpus(5000, seed=1)
    x = windows(ids, 16, 10, seed=2)
    assert x.shape == (10, 17) and torch.equal(x, windows(ids, 16, 10, seed=2))
    starts = [int((ids.unfold(0, 17, 1) == row).all(1).nonzero()[0]) for row in x]
    assert all(torch.equal(ids[s: s + 17], row) for s, row in zip(starts, x, strict=True))

    class Bigram(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Embedding(G.vocab_size, G.vocab_size)

        def forward(self, idx, targets=None):
            logits = self.table(idx)
            loss = None if targets is None else nn.functional.cross_entropy(
                logits.flatten(0, 1), targets.flatten())
            return logits, loss

    model = Bigram().train()
    nll = model_nll(model, x, batch_size=3)
    assert nll.shape == (10, 16) and model.training
    assert float(nll.mean()) == pytest.approx(model(x[:, :-1], x[:, 1:])[1].item(), rel=1e-5)
