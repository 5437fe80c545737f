"""Black-box (query-only) attacks from IBM ART, with an exact per-image query count and budget.

The attacker never sees a gradient: it may only ask the model for its output on an image of its
choice. Three ART attacks, each run one image at a time through an ART
``BlackBoxClassifierNeuralNetwork`` whose only access to the model is a :class:`QueryOracle`:

* **Square** (Andriushchenko et al., ECCV 2020), score-based, L∞: random square-shaped updates on
  the vertices of the ε-box, kept when the margin loss z_y − max_{k≠y} z_k decreases; ``p_init`` =
  0.05, the paper's value for ImageNet L∞ (ART's default is 0.8), and the paper's schedule of p over
  10,000 iterations, whatever the budget.
* **HopSkipJump** (Chen, Jordan & Wainwright, IEEE S&P 2020), decision-based (labels only), L∞
  version: starts from a random image the model already misclassifies, then alternates binary
  search towards x with a Monte-Carlo estimate of the boundary's normal (paper defaults: 100
  initial evaluations growing with √t, 100 random start draws). It is a minimum-distance attack;
  here it counts as a success once it asks a point inside the ε-ball that the model misclassifies.
* **SimBA** (Guo et al., ICML 2019), score-based: try x ± ε·q along a random pixel direction q of
  the standard basis, keep the first one that lowers the probability of y. Pixel basis (SimBA-pixel),
  so every query lies inside the L∞ ε-ball while the budget is under C·H·W. Chosen over ZOO
  (Chen et al., AISec 2017) because ART's ZOO estimates coordinate-wise gradients on batches of
  2·``nb_parallel`` full-size copies of the image with Adam state per coordinate and resizing, which
  is slow and memory-heavy at 224 px on a CPU; SimBA costs at most two forward passes of one image
  per step. (SimBA-DCT, the paper's stronger variant, is not L∞-bounded by ε.)

**Queries** (:class:`QueryOracle`): every image the attack asks the model about is one query of that
image; an identical image asked again is answered from the attacker's cache and not counted (ART's
Square re-asks the current iterate every iteration; the paper counts one query per iteration). The
attack stops at the first query that lies inside the ε-ball (L∞) and that the model misclassifies
(prediction ≠ the label attacked), or when ``cfg.queries`` images have been asked: the oracle evaluates
only the rows that still fit and stops the attack. The per-image count is ``AttackResult.queries``.
The returned x_adv is the attacker's best query inside the ε-ball: the first one that fooled, else the
one with the lowest margin z_y − max_{k≠y} z_k (Carlini & Wagner 2017's margin, Square's loss), which
for Square and SimBA is their own current iterate.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from sdsgsm.attacks.art_baselines import seeded
from sdsgsm.attacks.base import AttackConfig, CoreOutput, scalar_budget
from sdsgsm.params import BLACK_BOX_METHODS

BLACK_BOX = BLACK_BOX_METHODS  # registry order
_BALL_TOL = 1e-6  # float32 rounding of x ± ε
_CHUNK = 32  # rows per forward pass inside the oracle
SQUARE_HORIZON = 10000  # Square's schedule of the square size p: halvings at fixed shares of 10,000 iterations


class QueryStop(Exception):  # noqa: N818 - control flow, not an error: the attack is over
    """Raised by the oracle to end an ART attack: a query fooled the model inside the ε-ball, or the budget is spent."""


def blackbox_params(name: str, cfg: AttackConfig) -> dict:
    """Keyword arguments of ART attack ``name`` for ``cfg`` (plus 'art_class' and the query budget 'queries').

    The query budget, not an iteration count, ends every attack: HopSkipJump's and SimBA's iteration caps are
    the budget (each iteration asks at least one new image), and Square's p schedule runs over the paper's
    horizon of 10,000 iterations (:data:`SQUARE_HORIZON`) whatever the budget. So none of the three depends on
    the budget until it runs out: a run with budget B, cut at b < B queries, is the run with budget b (per
    image and seed), and one run at the largest budget gives the success rate at every smaller one.
    """
    if name == "square":
        return {"art_class": "SquareAttack", "norm": "inf", "eps": cfg.eps, "max_iter": SQUARE_HORIZON,
                "p_init": 0.05, "nb_restarts": 1, "queries": cfg.queries}
    if name == "hopskipjump":
        return {"art_class": "HopSkipJump", "norm": "inf", "targeted": False, "max_iter": cfg.queries,
                "max_eval": 10000, "init_eval": 100, "init_size": 100, "queries": cfg.queries}
    if name == "simba":
        return {"art_class": "SimBA", "attack": "px", "order": "random", "epsilon": cfg.eps, "max_iter": cfg.queries,
                "targeted": False, "queries": cfg.queries}
    raise ValueError(f"{name!r} is not a black-box attack; choose one of {', '.join(BLACK_BOX)}.")


class QueryOracle:
    """The attacker's only access to the model for one image x0: numpy images in, logits (or softmax) out.

    Counts every distinct image asked (``queries``), stops the attack (:class:`QueryStop`) at the first query
    inside the ε-ball that the model misclassifies (``success_at``: its 1-based query number) or once
    ``budget`` images have been asked, and keeps the best query inside the ε-ball (``best``: lowest margin
    z_y − max_{k≠y} z_k). ``probabilities``: answer softmax(z) instead of z (SimBA requires probabilities).
    """

    def __init__(self, model, x0: np.ndarray, y: int, eps: float, budget: int, probabilities: bool = False):
        self.model, self.x0, self.y, self.eps, self.budget = model, x0, int(y), float(eps), int(budget)
        self.probabilities = probabilities
        self.device = next((t.device for t in (*model.buffers(), *model.parameters())), torch.device("cpu"))
        self.queries = 0
        self.success_at: int | None = None
        self.best, self.best_margin = x0.copy(), math.inf
        self._cache: dict[bytes, np.ndarray] = {}

    @staticmethod
    def _key(row: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest()

    def _forward(self, rows: np.ndarray) -> np.ndarray:
        """Logits (n, K) float32 of rows (n, C, H, W), in chunks."""
        out = []
        with torch.inference_mode():
            for i in range(0, len(rows), _CHUNK):
                xb = torch.from_numpy(np.ascontiguousarray(rows[i:i + _CHUNK])).to(self.device)
                out.append(self.model(xb).float().cpu().numpy())
        return np.concatenate(out)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float32)
        keys = [self._key(r) for r in batch]
        new = list(dict.fromkeys(k for k in keys if k not in self._cache))
        room = self.budget - self.queries
        first = {k: i for i, k in reversed(list(enumerate(keys)))}  # the first row of each key
        asked = new[:max(room, 0)]
        stop = len(asked) < len(new)
        if asked:
            logits = self._forward(batch[[first[k] for k in asked]])  # (n, K)
            for j, (k, z) in enumerate(zip(asked, logits)):
                self._cache[k] = z
                row = batch[first[k]]
                others = np.delete(z, self.y)
                margin = float(z[self.y] - others.max()) if len(others) else math.inf
                inside = float(np.abs(row - self.x0).max()) <= self.eps + _BALL_TOL
                if inside and margin < self.best_margin:
                    self.best, self.best_margin = row.copy(), margin
                if inside and int(z.argmax()) != self.y:
                    self.queries += j + 1  # the queries after the first success are never asked
                    self.success_at = self.queries
                    raise QueryStop
            self.queries += len(asked)
        if stop:  # the budget ran out inside this batch: the rows that fitted were asked
            raise QueryStop
        out = np.stack([self._cache[k] for k in keys])
        if self.probabilities:
            out = np.exp(out - out.max(1, keepdims=True))
            out = out / out.sum(1, keepdims=True)
        return out.astype(np.float32)


def _hsj_start(oracle: QueryOracle, x0: np.ndarray, tries: int) -> np.ndarray | None:
    """HopSkipJump's start: uniform random images until one is misclassified (its own rule, ``init_size``
    tries), drawn here from the seeded numpy RNG because ART draws them from an unseeded RandomState."""
    for _ in range(tries):
        img = np.random.uniform(0.0, 1.0, size=x0.shape).astype(np.float32)
        if int(oracle(img[None]).argmax()) != oracle.y:
            return img
    return None


def attack_one(name: str, model, x0: np.ndarray, y: int, nb_classes: int, cfg: AttackConfig) -> tuple[np.ndarray, int]:
    """Black-box attack ``name`` on one image x0 (C, H, W) float32 in [0, 1] with label y.

    Returns (x_adv (C, H, W): the first query that fooled inside the ε-ball, else the lowest-margin query
    inside it; queries asked (≤ cfg.queries)).
    """
    from art.attacks import evasion
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    params = blackbox_params(name, cfg)
    oracle = QueryOracle(model, x0, y, cfg.eps, cfg.queries, probabilities=name == "simba")
    estimator = BlackBoxClassifierNeuralNetwork(oracle, tuple(x0.shape), nb_classes, channels_first=True,
                                                clip_values=(0.0, 1.0))
    kwargs = {k: v for k, v in params.items() if k not in ("art_class", "queries")}
    attack = getattr(evasion, params["art_class"])(estimator, batch_size=32 if name == "hopskipjump" else 1,
                                                   verbose=False, **kwargs)
    onehot = np.eye(nb_classes, dtype=np.float32)[[y]]
    try:
        if name == "hopskipjump":
            oracle(x0[None])  # the clean prediction, which HopSkipJump asks first
            start = _hsj_start(oracle, x0, params["init_size"])
            if start is not None:
                attack.generate(x0[None].copy(), y=onehot, x_adv_init=start[None])
        else:
            attack.generate(x0[None].copy(), y=onehot)
    except QueryStop:
        pass
    return oracle.best, oracle.queries


def blackbox_core(model, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, cfg: AttackConfig, scan=None, *,
                  name: str) -> CoreOutput:
    """Core of black-box attack ``name`` for :func:`~sdsgsm.attacks.base.run_method`.

    Args: x (N, 3, H, W) float32 in [0, 1]; y (N,) the labels attacked (success = prediction ≠ y); clean
    (N, K) clean logits (K sizes the classifier); ``scan`` is ignored. The images are attacked one after
    another, each with numpy's global RNG (which ART draws from) seeded by cfg.seed and restored afterwards,
    so an image's result depends on the image and the random seed only, not on its batch. Returns x_adv with
    |x_adv − x| ≤ ε, the scalar ε map and queries (N,) int64, the model queries each image cost.
    """
    if cfg.eps == 0:  # the ε-ball is x itself: nothing to ask
        return CoreOutput(x.clone(), scalar_budget(x, 0.0), queries=torch.zeros(len(x), dtype=torch.int64))
    k = clean.shape[1]
    x_np, y_np = x.cpu().numpy().astype(np.float32), y.cpu().numpy()
    advs, counts = [], []
    with seeded(cfg.seed, x.device):
        for i in range(len(x_np)):
            np.random.seed(cfg.seed)  # every image from the random seed: its run depends on it and that seed only
            adv, q = attack_one(name, model, x_np[i], int(y_np[i]), k, cfg)
            advs.append(adv)
            counts.append(q)
    x_adv = torch.from_numpy(np.stack(advs)).to(x.device)
    x_adv = (x + (x_adv - x).clamp(-cfg.eps, cfg.eps)).clamp(0.0, 1.0)  # drop float32 rounding beyond ε
    return CoreOutput(x_adv, scalar_budget(x, cfg.eps), queries=torch.tensor(counts, dtype=torch.int64))
