"""A corpus from a probabilistic grammar whose best possible loss is known exactly.

The grammar writes English-like sentences ("the big cat near the dogs sleeps .") with
subject-verb agreement across adjectives and prepositional phrases, so that predicting the verb
needs attention to a noun several words back. It is a *unifilar* probabilistic automaton (a
right-linear probabilistic grammar): from each state the next word is drawn from a fixed
distribution, and the state plus the word determine the next state. Hence

- every generated word's exact probability given all earlier words is known (:meth:`sample`);
- the entropy rate, the lowest loss per word any model can reach, has a closed form:
  ``h = sum_s pi_s H(words | s)`` with ``pi`` the stationary distribution of the states
  (:meth:`Grammar.entropy_rate`), equal to (sentence entropy) / (mean sentence length) by the
  renewal argument (:meth:`Grammar.entropy_per_sentence`, :meth:`Grammar.mean_sentence_length`);
- :meth:`Grammar.window_floor` gives the exact best loss on a window that starts at a random
  place (the first words of a window lack context, so a window's floor is a little above ``h``).

Words are the tokens. The text form (:meth:`Grammar.text`) writes each word followed by one
space, or by a newline after ".", so a character-level model's floor is
``h / (mean characters per word)`` (:meth:`Grammar.entropy_per_char`).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import torch

DETERMINERS = {"the": "any", "a": "sg", "some": "pl"}
ADJECTIVES = ("big", "small", "red", "tall", "happy", "quiet")
NOUNS_SG = ("cat", "dog", "bird", "child", "farmer", "teacher")
NOUNS_PL = ("cats", "dogs", "birds", "children", "farmers", "teachers")
PREPOSITIONS = ("near", "with", "behind")
INTRANSITIVE = {"sg": ("sleeps", "runs", "waits"), "pl": ("sleep", "run", "wait")}
TRANSITIVE = {"sg": ("sees", "likes", "chases"), "pl": ("see", "like", "chase")}
ADVERBS = ("today", "quietly", "again")
END = "."


def _spread(prob: float, words, next_state: str) -> list[tuple[float, str, str]]:
    """`prob` shared evenly among `words`, each going to `next_state`."""
    return [(prob / len(words), w, next_state) for w in words]


def _nouns(number: str) -> tuple[str, ...]:
    return {"sg": NOUNS_SG, "pl": NOUNS_PL, "any": NOUNS_SG + NOUNS_PL}[number]


def _noun_rules(prob: float, number: str, next_of) -> list[tuple[float, str, str]]:
    """Nouns allowed after a determiner of `number`; next_of(noun number) -> next state."""
    rules = []
    for n in (("sg", "pl") if number == "any" else (number,)):
        share = prob / (2 if number == "any" else 1)
        rules += _spread(share, _nouns(n), next_of(n))
    return rules


def default_rules() -> dict[str, list[tuple[float, str, str]]]:
    """state -> [(probability, word, next state)]. The start state is "S"."""
    rules: dict[str, list[tuple[float, str, str]]] = {
        "S": [(0.5, "the", "subj_any"), (0.25, "a", "subj_sg"), (0.25, "some", "subj_pl")],
        "obj": [(0.6, "the", "obj_any"), (0.4, "a", "obj_sg")],
        "intr": [(0.7, END, "S")] + _spread(0.3, ADVERBS, "adv"),
        "adv": [(1.0, END, "S")],
        "done": [(1.0, END, "S")],
    }
    for det_number in ("any", "sg", "pl"):  # subject: adjectives, then a noun fixing the number
        rules[f"subj_{det_number}"] = _spread(0.3, ADJECTIVES, f"subj_{det_number}") + \
            _noun_rules(0.7, det_number, lambda n: f"verb_{n}")
    for det_number in ("any", "sg"):  # object noun phrase: number irrelevant afterwards
        rules[f"obj_{det_number}"] = _spread(0.3, ADJECTIVES, f"obj_{det_number}") + \
            _noun_rules(0.7, det_number, lambda n: "done")
    for n in ("sg", "pl"):  # after the subject: a prepositional phrase, or the agreeing verb
        rules[f"verb_{n}"] = _spread(0.3, PREPOSITIONS, f"pp_{n}") + \
            _spread(0.35, INTRANSITIVE[n], "intr") + _spread(0.35, TRANSITIVE[n], "obj")
        rules[f"pp_{n}"] = [(1.0, "the", f"ppn_{n}")]
        # the noun inside the phrase may have either number; the subject's number is kept
        rules[f"ppn_{n}"] = _spread(0.25, ADJECTIVES, f"ppn_{n}") + \
            _noun_rules(0.75, "any", lambda _m, n=n: f"verb_{n}")
    return rules


@dataclass
class Grammar:
    """A unifilar probabilistic automaton over words; see the module docstring."""

    rules: dict[str, list[tuple[float, str, str]]] = field(default_factory=default_rules)
    start: str = "S"

    def __post_init__(self):
        if self.start not in self.rules:
            raise ValueError(f"start state {self.start!r} has no rules")
        self.states = list(self.rules)
        words = sorted({w for rs in self.rules.values() for _, w, _ in rs})
        self.vocab = words                                   # id -> word
        self.stoi = {w: i for i, w in enumerate(words)}
        K, V = len(self.states), len(words)
        index = {s: i for i, s in enumerate(self.states)}
        self.emit = torch.zeros(K, V, dtype=torch.float64)   # P(word | state)
        self.next = torch.full((K, V), -1, dtype=torch.long)  # next state, -1 = impossible
        for s, rs in self.rules.items():
            if abs(sum(p for p, _, _ in rs) - 1.0) > 1e-12:
                raise ValueError(f"the probabilities of state {s!r} do not sum to 1")
            for p, w, nxt in rs:
                if nxt not in index:
                    raise ValueError(f"state {s!r} goes to unknown state {nxt!r}")
                if self.emit[index[s], self.stoi[w]] > 0:
                    raise ValueError(f"state {s!r} has two rules for {w!r} (not unifilar)")
                if p <= 0:
                    raise ValueError(f"rule {s!r} -> {w!r} has probability {p} <= 0")
                self.emit[index[s], self.stoi[w]] = p
                self.next[index[s], self.stoi[w]] = index[nxt]
        self.start_id = index[self.start]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # ---------------------------------------------------------------- closed forms
    def transition_matrix(self) -> torch.Tensor:
        """(K, K) float64: P[s, s'] = probability that the next state is s' from state s."""
        K = len(self.states)
        P = torch.zeros(K, K, dtype=torch.float64)
        rows, cols = (self.next >= 0).nonzero(as_tuple=True)
        P.index_put_((rows, self.next[rows, cols]), self.emit[rows, cols], accumulate=True)
        return P

    def stationary(self) -> torch.Tensor:
        """(K,) the stationary distribution pi = pi P of the states (one linear solve)."""
        P = self.transition_matrix()
        K = P.shape[0]
        A = (P.T - torch.eye(K, dtype=torch.float64))
        A[-1] = 1.0                                          # replace one equation: sum pi = 1
        b = torch.zeros(K, dtype=torch.float64)
        b[-1] = 1.0
        return torch.linalg.solve(A, b)

    def state_entropies(self) -> torch.Tensor:
        """(K,) H(word | state) in nats."""
        p = self.emit
        return -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)

    def entropy_rate(self) -> float:
        """The exact entropy per word (nats): sum_s pi_s H(word | s)."""
        return float(self.stationary() @ self.state_entropies())

    def _visits(self) -> torch.Tensor:
        """(K,) expected visits of each state during one sentence (start to the next start)."""
        P = self.transition_matrix()
        Q = P.clone()
        Q[:, self.start_id] = 0.0                            # returning to the start ends it
        e = torch.zeros(len(self.states), dtype=torch.float64)
        e[self.start_id] = 1.0
        return torch.linalg.solve((torch.eye(len(e), dtype=torch.float64) - Q).T, e)

    def entropy_per_sentence(self) -> float:
        """Exact entropy of one sentence (nats), "." included."""
        return float(self._visits() @ self.state_entropies())

    def mean_sentence_length(self) -> float:
        """Exact expected number of words per sentence, "." included."""
        return float(self._visits().sum())

    def mean_chars_per_word(self) -> float:
        """Expected characters per word in :meth:`text` (the word and its separator)."""
        lengths = torch.tensor([len(w) + 1 for w in self.vocab], dtype=torch.float64)
        return float(self.stationary() @ (self.emit @ lengths))

    def entropy_per_char(self) -> float:
        """The floor of a character-level model on :meth:`text`, nats per character."""
        return self.entropy_rate() / self.mean_chars_per_word()

    # ---------------------------------------------------------------- sampling
    def sample(self, n_words: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """`n_words` word ids from the start state, and each word's exact log-probability given
        all earlier words (float64). Deterministic in `seed`."""
        if not isinstance(n_words, int) or n_words < 1:
            raise ValueError(f"n_words must be a positive int, got {n_words!r}")
        g = torch.Generator().manual_seed(seed)
        u = torch.rand(n_words, generator=g, dtype=torch.float64)
        cdf = self.emit.cumsum(-1)
        cdf[:, -1] = 1.0 + 1e-9                              # guard against rounding
        state, cdf_rows, next_rows = self.start_id, cdf.tolist(), self.next.tolist()
        log_emit = torch.where(self.emit > 0, self.emit.log(), torch.zeros_like(self.emit)).tolist()
        ids, logp = [], []
        for x in u.tolist():
            w = bisect.bisect_right(cdf_rows[state], x)
            ids.append(w)
            logp.append(log_emit[state][w])
            state = next_rows[state][w]
        return torch.tensor(ids, dtype=torch.long), torch.tensor(logp, dtype=torch.float64)

    def corpus(self, n_words: int, seed: int = 0) -> torch.Tensor:
        """A LongTensor of `n_words` word ids (see :meth:`sample`)."""
        return self.sample(n_words, seed)[0]

    def log_prob(self, ids) -> torch.Tensor:
        """Exact log-probability of each word of a sequence that starts at a sentence start."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        out = torch.empty(len(ids), dtype=torch.float64)
        state = self.start_id
        for i, w in enumerate(ids.tolist()):
            if not 0 <= w < self.vocab_size or self.next[state, w] < 0:
                raise ValueError(f"word {i} ({w!r}) cannot follow the words before it")
            out[i] = self.emit[state, w].log()
            state = int(self.next[state, w])
        return out

    def window_floor(self, x: torch.Tensor) -> torch.Tensor:
        """Exact best loss on windows: x (B, T+1) word ids cut from a long corpus at random
        places; returns (B, T) = -log p(x[:, t+1] | x[:, :t+1]) under the grammar, starting
        from the stationary distribution (the Bayes-optimal predictor of a model that sees only
        the window)."""
        if x.dim() != 2 or x.size(1) < 2:
            raise ValueError(f"x must be (B, T+1) with T >= 1, got shape {tuple(x.shape)}")
        K, V = self.emit.shape
        M = torch.zeros(V, K, K, dtype=torch.float64)        # M[w, s, s'] = P(w, s' | s)
        rows, cols = (self.next >= 0).nonzero(as_tuple=True)
        M[cols, rows, self.next[rows, cols]] = self.emit[rows, cols]
        belief = self.stationary().expand(x.size(0), K)      # (B, K)
        losses = []
        for t in range(x.size(1)):
            joint = torch.bmm(belief.unsqueeze(1), M[x[:, t]]).squeeze(1)  # (B, K)
            p = joint.sum(-1)                                # (B,) P(x_t | x_<t)
            if (p <= 0).any():
                raise ValueError("a window holds a word sequence the grammar cannot produce")
            if t > 0:
                losses.append(-p.log())
            belief = joint / p[:, None]
        return torch.stack(losses, 1)

    # ---------------------------------------------------------------- text
    def text(self, ids) -> str:
        """Word ids -> text: each word then a space, or a newline after "."."""
        return "".join(self.vocab[i] + ("\n" if self.vocab[i] == END else " ")
                       for i in torch.as_tensor(ids).tolist())

    def encode(self, text: str) -> list[int]:
        """Text (as written by :meth:`text`) -> word ids."""
        try:
            return [self.stoi[w] for w in text.split()]
        except KeyError as err:
            raise ValueError(f"{err.args[0]!r} is not a word of the grammar") from None


def entropy_summary(grammar: Grammar | None = None) -> dict[str, float]:
    """The grammar's closed-form numbers in one dict (nats)."""
    g = grammar or Grammar()
    return dict(entropy_per_word=g.entropy_rate(), entropy_per_sentence=g.entropy_per_sentence(),
                mean_sentence_length=g.mean_sentence_length(),
                entropy_per_char=g.entropy_per_char(), vocab_size=float(g.vocab_size),
                uniform=math.log(g.vocab_size))


def windows(ids: torch.Tensor, block_size: int, n_windows: int, seed: int = 0) -> torch.Tensor:
    """(n_windows, block_size + 1) windows cut from a 1-D id tensor at seeded random places:
    inputs are [:, :-1], targets [:, 1:] (the layout of a training batch)."""
    if ids.dim() != 1 or len(ids) <= block_size + 1:
        raise ValueError(f"ids must be 1-D and longer than block_size + 1 = {block_size + 1}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(ids) - block_size, (n_windows,), generator=g)
    return ids[starts[:, None] + torch.arange(block_size + 1)]


@torch.no_grad()
def model_nll(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """(B, T) per-token loss of a model with forward(idx) -> (logits, loss) on windows x (B, T+1),
    in eval mode; compare with :meth:`Grammar.window_floor` on the same windows."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for chunk in x.split(batch_size):
        logits, _ = model(chunk[:, :-1].to(device))
        logp = torch.log_softmax(logits.float(), -1)
        out.append(-logp.gather(-1, chunk[:, 1:, None].to(device)).squeeze(-1).cpu())
    model.train(was_training)
    return torch.cat(out).double()
