"""Robust-training lab on scikit-learn's bundled handwritten digits.

Four small CNNs on the 1,797 8×8 digits of :func:`sklearn.datasets.load_digits` (offline, pixels
0..16 scaled to [0, 1]), trained with fixed seeds on the CPU in seconds:

* ``standard``  cross-entropy on the labels;
* ``distilled`` defensive distillation (Papernot et al., IEEE S&P 2016, §IV): a teacher trained
  on softmax(z/T), a student trained on the teacher's soft labels softmax(z_t/T) at the same T,
  deployed at T = 1 (its logits used as they are);
* ``fgsm_at``   FGSM adversarial training, Goodfellow et al. 2015's mixed objective
  ½·J(x, y) + ½·J(x + ε·sign ∇ₓJ, y) (Goodfellow et al., ICLR 2015);
* ``pgd_at``    PGD adversarial training (Madry et al., ICLR 2018): min_θ E max_{‖δ‖∞≤ε} J(x+δ, y),
  the inner max by PGD from a uniform random start.

Evaluation goes through the attack registry (:func:`sdsgsm.attacks.run_attack`) with accuracy over
ALL test images (ε = 0 gives the clean accuracy); CW-L2 (registry ``cw``, IBM ART) on the logits
shows that distillation masks gradients (Carlini & Wagner 2017) rather than removing the
vulnerability. ε is bounded by the parameter spec's ε range (0 … 32/255 ≈ 0.125, sdsgsm/params.py).

Settings: :data:`sdsgsm.params.LAB_PARAMS` gives TrainConfig's and EvalConfig's defaults and ranges.

Determinism: every random draw comes from a generator seeded by ``TrainConfig.seed``, and training runs on a
fixed number of torch CPU threads (``TrainConfig.threads``), so the same settings give the same weights bit for
bit (:func:`weights_sha256`). Nothing here changes torch's thread count: torch's count is process-wide, so the
caller runs in a process of its own — the command line's (``run_context``), or a fresh worker process per call
(:func:`run_isolated`, used by the app), whose count is set once at its start.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sdsgsm.data import ASSETS
from sdsgsm.models import Classifier
from sdsgsm.params import FAIR_EPS_MAX, LAB_METHOD_NAMES, LAB_PARAMS, PARAMS, check, check_fields, default
from sdsgsm.render.viz import MODEL_COLOURS  # noqa: F401  (re-exported for the lab page)

LAB_DIR = ASSETS / "lab"
LAB_JSON = "lab.json"
MODELS = ("standard", "distilled", "fgsm_at", "pgd_at")
MODEL_TEXT = {
    "standard": "cross-entropy on the labels",
    "distilled": "defensive distillation: a teacher trained on softmax(z/T), a student on the teacher's soft labels "
                 "at the same T, deployed at T = 1 (Papernot et al. 2016)",
    "fgsm_at": "FGSM adversarial training: ½ clean + ½ FGSM loss at the training ε (Goodfellow et al. 2015)",
    "pgd_at": "PGD adversarial training: the loss on PGD examples at the training ε (Madry et al. 2018)",
}
LABELS = [str(i) for i in range(10)]
EPS_TOP = PARAMS["eps"].hi  # 32/255: the spec's ε range bounds every registry attack
LAB_METHODS = LAB_METHOD_NAMES
Progress = Callable[[str, int, int], None]  # (text, done, total)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings of the four lab models (one seed for everything); defaults and ranges from
    :data:`sdsgsm.params.LAB_PARAMS`.

    seed: split, initialisation, shuffling and PGD starts; test_size: share of the stratified test
    split; epochs, batch_size, lr: Adam on every model (teacher and student alike); temperature: T of
    the distillation pair; train_eps: ε of FGSM/PGD adversarial training on the [0, 1] scale;
    pgd_steps: inner PGD steps (α = 2.5·ε/steps, Madry et al.); threads: torch CPU threads of the
    process that trains (:func:`run_isolated`; the command line's own process).
    """

    seed: int = default("seed", LAB_PARAMS)
    test_size: float = default("test_size", LAB_PARAMS)
    epochs: int = default("epochs", LAB_PARAMS)
    batch_size: int = default("batch_size", LAB_PARAMS)
    lr: float = default("lr", LAB_PARAMS)
    temperature: float = default("temperature", LAB_PARAMS)
    train_eps: float = default("train_eps", LAB_PARAMS)
    pgd_steps: int = default("pgd_steps", LAB_PARAMS)
    threads: int = default("threads", LAB_PARAMS)

    def __post_init__(self):
        check_fields(self, spec=LAB_PARAMS)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings: ε values (≤ 32/255, the spec's range), registry methods, steps T of the
    multi-step methods (α = 2.5·ε/T), window side m of SD-SGSM's zero-out scan (8×8 images:
    m = 2, 16 windows), ε_weak = weak_ratio·ε_strong with ε_strong = ε (the defaults' 2/255 : 8/255
    = ¼), CW-L2 iterations and the number of test images CW runs on (None: all); threads: torch CPU
    threads of the process that evaluates (1: these small nets run fastest on one thread, and far faster
    than on two when the CPU is shared). steps, cw_steps, cw_limit: :data:`sdsgsm.params.LAB_PARAMS`."""

    eps: tuple[float, ...] = tuple(np.linspace(0.0, EPS_TOP, 9).tolist())
    methods: tuple[str, ...] = LAB_METHODS
    steps: int = default("steps", LAB_PARAMS)
    patch: int = 2
    weak_ratio: float = 0.25
    cw_steps: int = default("cw_steps", LAB_PARAMS)
    cw_limit: int | None = default("cw_limit", LAB_PARAMS)
    seed: int = 0
    batch_size: int = 512
    threads: int = 1

    def __post_init__(self):
        bad = [e for e in self.eps if not (isinstance(e, (int, float)) and 0 <= e <= EPS_TOP + 1e-12)]
        if bad or not self.eps:
            raise ValueError(f"ε values must lie in 0 … 32/255 ≈ {EPS_TOP:.4f} (got {bad[0] if bad else 'none'!r}).")
        if not 0 <= self.weak_ratio <= 1:
            raise ValueError(f"weak_ratio must lie in 0 … 1 (got {self.weak_ratio!r}).")
        if self.cw_limit is not None:
            check("cw_limit", self.cw_limit, LAB_PARAMS)
        check("steps", self.steps, LAB_PARAMS)
        check("cw_steps", self.cw_steps, LAB_PARAMS)


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Split:
    """The stratified split: x (N, 1, 8, 8) float32 in [0, 1], y (N,) int64, and the indices into
    load_digits' 1,797 images."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_idx: np.ndarray
    test_idx: np.ndarray


def load_split(seed: int = 0, test_size: float = 0.25) -> Split:
    """sklearn's digits (pixels 0..16 → /16) split with ``train_test_split(stratify=y, random_state=seed)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]  # (1797, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.int64)
    tr, te = train_test_split(np.arange(len(y)), test_size=test_size, stratify=d.target, random_state=seed)
    tr, te = np.sort(tr), np.sort(te)
    return Split(x[tr], y[tr], x[te], y[te], tr, te)


# ----------------------------------------------------------------------------- model
class DigitsCNN(nn.Module):
    """conv 3×3 (1→16) · ReLU · conv 3×3 (16→32) · ReLU · max-pool 2 · FC 512→64 · ReLU · FC 64→10 (38,282 weights)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 16, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv2(F.relu(self.conv1(x))))  # (N, 32, 8, 8)
        h = F.max_pool2d(h, 2).flatten(1)  # (N, 512)
        return self.fc2(F.relu(self.fc1(h)))  # (N, 10) logits


def new_net(seed: int) -> DigitsCNN:
    """A freshly initialised DigitsCNN, its initialisation drawn under ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DigitsCNN()


def classifier(net: nn.Module, name: str) -> Classifier:
    """The frozen registry model on (N, 1, 8, 8) inputs in [0, 1] (no normalisation)."""
    return Classifier(net, name, LABELS, 8, mean=(0.0,), std=(1.0,))


# ----------------------------------------------------------------------------- training
def _input_grad(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇ₓ J(θ, x, y), J the summed cross-entropy (a sample's step does not depend on the batch)."""
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(F.cross_entropy(net(x), y, reduction="sum"), x)[0]


def fgsm_examples(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """x + ε·sign ∇ₓJ clipped to [0, 1] (Goodfellow et al., ICLR 2015), for training."""
    return (x + eps * _input_grad(net, x, y).sign()).clamp(0, 1).detach()


def pgd_examples(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                 gen: torch.Generator) -> torch.Tensor:
    """PGD (Madry et al., ICLR 2018): uniform start in the ε-box, ``steps`` sign steps of
    α = 2.5·ε/steps, each projected on the ε-box and [0, 1]; for training (the same update as the
    registry's ``pgd``, which needs a frozen model)."""
    alpha = 2.5 * eps / steps
    start = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    adv = (x + start).clamp(0, 1)
    for _ in range(steps):
        adv = adv + alpha * _input_grad(net, adv, y).sign()
        adv = (x + (adv - x).clamp(-eps, eps)).clamp(0, 1)
    return adv.detach()


def _batches(n: int, batch_size: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def train_net(split: Split, cfg: TrainConfig, loss_fn, seed_offset: int = 0, progress: Progress | None = None,
              what: str = "") -> DigitsCNN:
    """Adam for ``cfg.epochs`` epochs over shuffled mini-batches; ``loss_fn(net, xb, yb, idx, gen)``
    returns the batch loss (mean over the batch). Initialisation and shuffling are seeded by
    ``cfg.seed + seed_offset``. progress(what, epoch, epochs) after every epoch."""
    net = new_net(cfg.seed + seed_offset)
    gen = torch.Generator().manual_seed(cfg.seed + 1000 + seed_offset)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    for epoch in range(cfg.epochs):
        for idx in _batches(len(split.y_train), cfg.batch_size, gen):
            loss = loss_fn(net, split.x_train[idx], split.y_train[idx], idx, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if progress is not None:
            progress(what, epoch + 1, cfg.epochs)
    return net.eval()


def standard_loss(net, xb, yb, idx, gen):
    """J(θ, x, y): mean cross-entropy on the labels."""
    return F.cross_entropy(net(xb), yb)


def temperature_loss(temperature: float):
    """The teacher's loss: cross-entropy of softmax(z/T) against the labels (Papernot et al. 2016, eq. 5)."""
    return lambda net, xb, yb, idx, gen: F.cross_entropy(net(xb) / temperature, yb)


def soft_label_loss(soft: torch.Tensor, temperature: float):
    """The student's loss: −Σ_k p_k log softmax(z/T)_k against the teacher's soft labels p = softmax(z_t/T)
    (Papernot et al. 2016, §IV-B, the same T)."""
    return lambda net, xb, yb, idx, gen: -(soft[idx] * F.log_softmax(net(xb) / temperature, 1)).sum(1).mean()


def fgsm_at_loss(eps: float):
    """Goodfellow et al. (ICLR 2015)'s adversarial objective ½·J(x, y) + ½·J(x + ε·sign ∇ₓJ, y)."""
    def loss(net, xb, yb, idx, gen):
        adv = fgsm_examples(net, xb, yb, eps)
        return 0.5 * F.cross_entropy(net(xb), yb) + 0.5 * F.cross_entropy(net(adv), yb)
    return loss


def pgd_at_loss(eps: float, steps: int):
    """Madry et al. 2018's robust objective: J on PGD examples only (Madry et al., ICLR 2018, the min-max)."""
    return lambda net, xb, yb, idx, gen: F.cross_entropy(net(pgd_examples(net, xb, yb, eps, steps, gen)), yb)


def train_model(name: str, split: Split, cfg: TrainConfig, progress: Progress | None = None) -> DigitsCNN:
    """Train one lab model (:data:`MODELS`) on ``split``; see the module docstring for each objective."""
    if name == "standard":
        return train_net(split, cfg, standard_loss, 0, progress, name)
    if name == "distilled":
        teacher = train_net(split, cfg, temperature_loss(cfg.temperature), 1, progress, "distilled (teacher)")
        with torch.no_grad():
            soft = F.softmax(teacher(split.x_train) / cfg.temperature, 1)  # (N_train, 10) soft labels
        return train_net(split, cfg, soft_label_loss(soft, cfg.temperature), 2, progress, "distilled (student)")
    if name == "fgsm_at":
        return train_net(split, cfg, fgsm_at_loss(cfg.train_eps), 3, progress, name)
    if name == "pgd_at":
        return train_net(split, cfg, pgd_at_loss(cfg.train_eps, cfg.pgd_steps), 4, progress, name)
    raise ValueError(f"Unknown lab model {name!r}; choose one of {', '.join(MODELS)}.")


# ----------------------------------------------------------------------------- weights
def weights_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the state_dict's names, shapes and float32 bytes in key order (independent of the file
    format), the checksum the determinism test compares."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def state_bytes(net: nn.Module) -> bytes:
    """The state_dict as ``torch.save`` bytes (read back with ``torch.load(weights_only=True)``)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, buf)
    return buf.getvalue()


def net_from_bytes(data: bytes) -> DigitsCNN:
    """A DigitsCNN from state_dict bytes, read with ``torch.load(weights_only=True)`` (no code runs)."""
    net = DigitsCNN()
    net.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    return net.eval()


def train_all(cfg: TrainConfig, split: Split | None = None, progress: Progress | None = None,
              models: Sequence[str] = MODELS) -> tuple[dict[str, DigitsCNN], dict[str, float]]:
    """Train ``models`` in order; returns ({name: net}, {name: training seconds})."""
    split = split or load_split(cfg.seed, cfg.test_size)
    nets, seconds = {}, {}
    for name in models:
        t0 = time.perf_counter()
        nets[name] = train_model(name, split, cfg, progress)
        seconds[name] = round(time.perf_counter() - t0, 3)
    return nets, seconds


def clean_accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of images (N, 1, 8, 8) whose argmax logit is the label."""
    with torch.no_grad():
        return int((net(x).argmax(1) == y).sum()) / len(y)


def lab_files(nets: Mapping[str, nn.Module], cfg: TrainConfig, seconds: Mapping[str, float], command: str,
              split: Split | None = None) -> dict[str, bytes]:
    """{<model>.pt: state_dict bytes, lab.json: the record} — the training settings, seed, split (test indices
    into load_digits), the command, each file's sha256, weight checksum, clean test accuracy and seconds."""
    split = split or load_split(cfg.seed, cfg.test_size)
    files, models = {}, {}
    for name, net in nets.items():
        data = state_bytes(net)
        files[f"{name}.pt"] = data
        models[name] = {"file": f"{name}.pt", "sha256": hashlib.sha256(data).hexdigest(),
                        "weights_sha256": weights_sha256(net.state_dict()), "description": MODEL_TEXT[name],
                        "clean_accuracy": round(clean_accuracy(net, split.x_test, split.y_test), 6),
                        "train_seconds": seconds.get(name)}
    record = {"data": "sklearn.datasets.load_digits (1,797 images 8×8, pixels 0..16 scaled by 1/16 to [0, 1])",
              "split": {"method": "sklearn train_test_split(stratify=y, random_state=seed)", "seed": cfg.seed,
                        "test_size": cfg.test_size, "n_train": len(split.train_idx), "n_test": len(split.test_idx),
                        "test_indices": split.test_idx.tolist()},
              "training": asdict(cfg), "architecture": DigitsCNN.__doc__, "command": command,
              "versions": {"torch": torch.__version__, "sklearn": _sklearn_version()}, "models": models}
    files[LAB_JSON] = json.dumps(record, indent=2, ensure_ascii=False).encode("utf-8")
    return files


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


@dataclass(frozen=True)
class LabModels:
    """Loaded lab models: ``nets`` {name: frozen Classifier}, the ``record`` of lab.json and its TrainConfig."""

    nets: dict
    record: dict
    cfg: TrainConfig = field(default_factory=TrainConfig)


def read_record(folder: str | Path = LAB_DIR) -> dict:
    """lab.json of a lab folder as a dict; ValueError (one line) if missing or unreadable."""
    path = Path(folder) / LAB_JSON
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["models"], record["training"]  # noqa: B018 - the keys a lab.json must have
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{Path(folder).name}/{LAB_JSON} is missing or not a lab record; run "
                         "`python -m sdsgsm lab train --out DIR` first.") from None
    return record


def load_models(folder: str | Path = LAB_DIR) -> LabModels:
    """The lab models of ``folder`` (default: the shipped assets/lab), each file's sha256 checked against
    lab.json before ``torch.load(weights_only=True)``; ValueError (one line) on a mismatch."""
    folder = Path(folder)
    record = read_record(folder)
    nets = {}
    for name, entry in record["models"].items():
        try:
            data = (folder / entry["file"]).read_bytes()
        except OSError:
            raise ValueError(f"{entry['file']} is missing from {folder.name}/.") from None
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError(f"{entry['file']} does not match the sha256 in {LAB_JSON}; retrain with "
                             "`python -m sdsgsm lab train`.")
        nets[name] = classifier(net_from_bytes(data), name)
    return LabModels(nets, record, TrainConfig(**record["training"]))


def frozen(nets: Mapping[str, nn.Module]) -> dict[str, Classifier]:
    """{name: registry Classifier} of freshly trained nets (their parameters frozen in place)."""
    return {name: classifier(net, name) for name, net in nets.items()}


# ----------------------------------------------------------------------------- evaluation
def attack_config(eps: float, ecfg: EvalConfig):
    """The registry AttackConfig of one ε: uniform methods ε; SD-SGSM ε_strong = ε, ε_weak = weak_ratio·ε
    (eq. 5); ε_max lifted to ε above the paper's 8/255 cap (as sdsgsm/experiments/sweep.py does); m = ecfg.patch."""
    from sdsgsm.attacks import build_config

    return build_config({"eps": eps, "eps_strong": eps, "eps_weak": eps * ecfg.weak_ratio,
                         "eps_max": max(eps, FAIR_EPS_MAX), "steps": ecfg.steps, "patch": ecfg.patch,
                         "seed": ecfg.seed})


def attack_accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor, method: str, cfg,
                    batch_size: int = 512) -> tuple[float, object]:
    """(accuracy over ALL images, last AttackResult): share of x whose adversarial prediction is the label,
    the attack through :func:`sdsgsm.attacks.run_attack`."""
    from sdsgsm.attacks import run_attack

    hits, result = 0, None
    for a in range(0, len(x), batch_size):
        result = run_attack(model, x[a:a + batch_size], y[a:a + batch_size], cfg, method)
        hits += int((result.adv_pred.cpu() == y[a:a + batch_size]).sum())
    return hits / len(x), result


def accuracy_curve(models: Mapping[str, Classifier], x: torch.Tensor, y: torch.Tensor, ecfg: EvalConfig,
                   progress: Progress | None = None, units=None) -> pd.DataFrame:
    """Accuracy under attack against ε: one row per (model, method, ε) with accuracy (0..1), n and seconds.

    Accuracy over ALL test images (so ε = 0 is the clean accuracy). ``units`` (a
    :class:`~sdsgsm.experiments.runner.UnitStore`) records every finished (model, method, ε); those an earlier
    run with the same models, images and settings finished are read back, not run."""
    from sdsgsm.experiments.runner import UnitStore, fingerprint_model, fingerprint_tensor

    rows, total, done = [], len(models) * len(ecfg.methods) * len(ecfg.eps), 0
    if units is not None:
        units.begin({"experiment": "lab eval", "settings": {k: v for k, v in asdict(ecfg).items() if k != "threads"},
                     "models": {n: fingerprint_model(m) for n, m in models.items()}, "images": fingerprint_tensor(x),
                     "labels": fingerprint_tensor(y)}, total)
    for name, model in models.items():
        for method in ecfg.methods:
            for eps in ecfg.eps:
                key = UnitStore.key(name, method, float(eps))
                if units is not None and key in units:  # finished by an earlier run
                    rows += units.get(key)[1]
                    done += 1
                    if progress is not None:
                        progress(f"{name} · {method}", done, total)
                    continue
                t0 = time.perf_counter()
                acc, _ = attack_accuracy(model, x, y, method, attack_config(eps, ecfg), ecfg.batch_size)
                rows.append({"model": name, "method": method, "eps": float(eps), "eps_255": float(eps) * 255,
                             "accuracy": acc, "n": len(x), "seconds": round(time.perf_counter() - t0, 4)})
                if units is not None:
                    units.add(key, rows=[rows[-1]])
                done += 1
                if progress is not None:
                    progress(f"{name} · {method}", done, total)
    return pd.DataFrame(rows)


def cw_table(models: Mapping[str, Classifier], x: torch.Tensor, y: torch.Tensor, ecfg: EvalConfig,
             names: Sequence[str] = ("standard", "distilled")) -> pd.DataFrame:
    """CW-L2 (registry ``cw``: ART CarliniL2Method, c = 1, ``ecfg.cw_steps`` iterations) on the first
    ``ecfg.cw_limit`` test images of each model in ``names``: success rate over the clean-correct ones
    (the registry's ASR), mean L2 and L∞ over the successful ones, seconds. CW works on the logits, so
    the distilled model's saturated softmax does not stop it (Carlini & Wagner 2017)."""
    from sdsgsm.attacks import run_attack
    from sdsgsm.metrics import evaluate, summarise

    n = len(x) if ecfg.cw_limit is None else min(ecfg.cw_limit, len(x))
    cfg = replace(attack_config(0.0, ecfg), steps=ecfg.cw_steps)
    rows = []
    for name in names:
        t0 = time.perf_counter()
        result = run_attack(models[name], x[:n], y[:n], cfg, "cw")
        s = summarise(evaluate(x[:n], result, "clean_correct").per_sample)
        rows.append({"model": name, "method": "cw", "n": n, "n_clean_correct": s["n"], "success_rate": s["asr"],
                     "l2_mean": s["l2_mean"], "linf_mean": s["linf_mean"],
                     "accuracy": int((result.adv_pred.cpu() == y[:n]).sum()) / n,
                     "steps": ecfg.cw_steps, "seconds": round(time.perf_counter() - t0, 3)})
    return pd.DataFrame(rows)


def saturation(models: Mapping[str, Classifier], x: torch.Tensor, y: torch.Tensor) -> pd.DataFrame:
    """How saturated each model's softmax at T = 1 is on x (Papernot et al. 2016 §V; Carlini & Wagner 2017
    §IV): mean max-probability, share with max-probability > 0.999, median L2 norm of the input gradient of
    the cross-entropy ‖∇ₓJ‖₂ and the share of images whose gradient is exactly 0 in float32 (FGSM's sign
    step then moves nothing: the gradient is masked, not the vulnerability removed)."""
    rows = []
    for name, model in models.items():
        with torch.no_grad():
            p = F.softmax(model(x), 1).max(1).values  # (N,)
        g = _input_grad(model, x, y).flatten(1)  # (N, 64)
        norm = g.norm(dim=1)
        rows.append({"model": name, "mean_max_prob": float(p.mean()), "share_max_prob_gt_0999": float((p > 0.999)
                     .float().mean()), "median_grad_l2": float(norm.median()),
                     "share_zero_grad": float((norm == 0).float().mean()), "n": len(x)})
    return pd.DataFrame(rows)


def falls_at(curve: pd.DataFrame, model: str = "standard", method: str = "fgsm", threshold: float = 0.5):
    """The smallest ε of the grid at which ``model``'s accuracy under ``method`` is below ``threshold``
    ("falls"), or None when it never does."""
    part = curve[(curve["model"] == model) & (curve["method"] == method)].sort_values("eps")
    below = part[part["accuracy"] < threshold]
    return None if below.empty else float(below["eps"].iloc[0])


def headline(curve: pd.DataFrame, method: str = "fgsm", threshold: float = 0.5) -> dict:
    """The kind of figure of arXiv:2312.16880 (92.91 % at 30 % FGSM noise): every model's accuracy at
    the ε where the standard model falls below ``threshold`` under ``method``."""
    eps = falls_at(curve, "standard", method, threshold)
    if eps is None:
        return {"method": method, "threshold": threshold, "eps": None, "accuracy": {}}
    at = curve[(curve["method"] == method) & (np.isclose(curve["eps"], eps))]
    return {"method": method, "threshold": threshold, "eps": eps, "eps_255": eps * 255,
            "accuracy": dict(zip(at["model"], at["accuracy"].astype(float)))}


def wide_table(curve: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (%) with one row per (method, ε) and one column per model — the README's table."""
    t = curve.assign(accuracy=curve["accuracy"] * 100, eps=curve["eps"].round(4))
    return t.pivot_table(index=["method", "eps"], columns="model", values="accuracy", sort=False).reset_index()


@dataclass(frozen=True)
class LabEval:
    """One evaluation: the accuracy curve, the CW table, the saturation table, the headline and timing."""

    curve: pd.DataFrame
    cw: pd.DataFrame
    saturation: pd.DataFrame
    headline: dict
    seconds: dict


def evaluate_lab(models: Mapping[str, Classifier], split: Split, ecfg: EvalConfig,
                 progress: Progress | None = None, cw: bool = True, units=None) -> LabEval:
    """Everything the lab reports on the test split: curve, CW (if ``cw``), saturation, headline. ``units``:
    the curve's unit store (:func:`accuracy_curve`)."""
    t0 = time.perf_counter()
    curve = accuracy_curve(models, split.x_test, split.y_test, ecfg, progress, units)
    t1 = time.perf_counter()
    cw_df = cw_table(models, split.x_test, split.y_test, ecfg) if cw and "distilled" in models else pd.DataFrame()
    t2 = time.perf_counter()
    sat = saturation(models, split.x_test, split.y_test)
    return LabEval(curve, cw_df, sat, headline(curve), {"curve": round(t1 - t0, 3), "cw": round(t2 - t1, 3),
                                                         "saturation": round(time.perf_counter() - t2, 3)})


def eval_files(ev: LabEval, ecfg: EvalConfig, record: Mapping, command: str = "") -> dict[str, bytes]:
    """{lab_accuracy.csv (one row per model, method, ε), lab_table.csv (wide, %), lab_cw.csv,
    lab_saturation.csv, lab_eval.json (settings, headline, timing, the weights' sha256)} as bytes."""
    info = {"criterion": "accuracy over ALL test images (ε = 0: clean accuracy); CW: success rate over the "
                         "clean-correct ones of the first cw_limit images, L2/L∞ over the successful ones",
            "eval": asdict(ecfg), "headline": ev.headline, "seconds": ev.seconds, "command": command,
            "training": record.get("training"), "n_test": record.get("split", {}).get("n_test"),
            "weights_sha256": {k: v["sha256"] for k, v in record.get("models", {}).items()},
            "coupling": "uniform methods: ε; SD-SGSM: ε_strong = ε, ε_weak = weak_ratio·ε, m = patch"}
    return {"lab_accuracy.csv": ev.curve.to_csv(index=False).encode("utf-8"),
            "lab_table.csv": wide_table(ev.curve).to_csv(index=False).encode("utf-8"),
            "lab_cw.csv": ev.cw.to_csv(index=False).encode("utf-8"),
            "lab_saturation.csv": ev.saturation.to_csv(index=False).encode("utf-8"),
            "lab_eval.json": json.dumps(info, indent=2, ensure_ascii=False, default=str).encode("utf-8")}


def read_eval(folder: str | Path, record: Mapping) -> LabEval | None:
    """The saved evaluation of a lab folder (eval_files' CSVs and JSON) when it was made from the same
    weights (sha256 in lab_eval.json equal to lab.json's), else None."""
    folder = Path(folder)
    try:
        info = json.loads((folder / "lab_eval.json").read_text(encoding="utf-8"))
        if info["weights_sha256"] != {k: v["sha256"] for k, v in record["models"].items()}:
            return None
        tables = [pd.read_csv(folder / f) for f in ("lab_accuracy.csv", "lab_cw.csv", "lab_saturation.csv")]
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return None
    return LabEval(*tables, info["headline"], info["seconds"])


def examples(models: Mapping[str, Classifier], x: torch.Tensor, y: torch.Tensor, eps: float, method: str,
             ecfg: EvalConfig) -> dict[str, dict]:
    """Adversarial versions of a few digits x (k, 1, 8, 8) per model: {model: {x_adv (k, 8, 8) numpy in [0, 1],
    clean_pred, adv_pred, adv_prob (k,)}} through the registry at ``eps``."""
    from sdsgsm.attacks import run_attack

    out = {}
    for name, model in models.items():
        r = run_attack(model, x, y, attack_config(eps, ecfg), method)
        out[name] = {"x_adv": r.x_adv[:, 0].cpu().numpy(), "clean_pred": r.clean_pred.cpu().numpy(),
                     "adv_pred": r.adv_pred.cpu().numpy(),
                     "adv_prob": F.softmax(r.adv_logits, 1).max(1).values.cpu().numpy()}
    return out


# ----------------------------------------------------------------------------- one worker process per call
def train_and_evaluate(cfg: TrainConfig, models: Sequence[str] = MODELS, ecfg: EvalConfig | None = None,
                       cw: bool = True, progress: Progress | None = None) -> tuple[dict, dict, LabEval | None]:
    """Train ``models`` (:func:`train_all`) and, with ``ecfg``, evaluate them on the test split
    (:func:`evaluate_lab`), on the calling process's torch threads. Returns ({name: state_dict bytes},
    {name: training seconds}, LabEval or None); ``progress(text, done, total)`` counts both phases."""
    split = load_split(cfg.seed, cfg.test_size)
    train_total = cfg.epochs * (len(models) + ("distilled" in models))  # the distillation pair trains two nets
    eval_total = 0 if ecfg is None else len(models) * len(ecfg.methods) * len(ecfg.eps)
    total, done = train_total + eval_total, [0]

    def tick(text, epoch, epochs):
        done[0] += 1
        if progress is not None:
            progress(f"training {text}: epoch {epoch}/{epochs}", done[0], total)

    nets, seconds = train_all(cfg, split, tick, models)
    states = {name: state_bytes(net) for name, net in nets.items()}
    ev = None
    if ecfg is not None:
        def eval_tick(text, d, _):
            if progress is not None:
                progress(f"evaluating {text}", train_total + d, total)

        ev = evaluate_lab(frozen(nets), split, ecfg, eval_tick, cw)
    return states, seconds, ev


def _evaluate_states(states: Mapping[str, bytes], x: np.ndarray, y: np.ndarray, ecfg: EvalConfig, cw: bool,
                     progress: Progress | None = None) -> LabEval:
    empty = torch.empty(0)
    split = Split(empty, empty, torch.from_numpy(x), torch.from_numpy(y), np.empty(0, int), np.empty(0, int))
    return evaluate_lab(frozen({k: net_from_bytes(v) for k, v in states.items()}), split, ecfg, progress, cw)


# The worker's first lines: keep a private copy of stdout for the results and send everything else printed to
# stdout (by Python or C code) to stderr, take the caller's import path, then serve one request.
_BOOT = ("import os, pickle, sys; channel = os.fdopen(os.dup(1), 'wb'); os.dup2(2, 1); "
         "sys.path[:] = pickle.load(sys.stdin.buffer); "
         "from sdsgsm.experiments.lab import _serve; _serve(sys.stdin.buffer, channel)")


def _serve(inp, channel) -> None:
    """The worker process: read (fn, args, threads), set this process's torch thread count, run
    ``fn(*args, progress=…)`` and send progress lines and the result (or the error) back as pickles."""
    fn, args, threads = pickle.load(inp)
    torch.set_num_threads(threads)

    def send(kind: str, value) -> None:
        pickle.dump((kind, value), channel)
        channel.flush()

    try:
        result = fn(*args, progress=lambda text, done, total: send("progress", (text, done, total)))
    except ValueError as exc:
        send("value-error", str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure goes back to the caller as one line
        send("error", f"{type(exc).__name__}: {exc}")
    else:
        send("result", result)


def run_isolated(fn: Callable, *args, threads: int = 1, progress: Progress | None = None):
    """``fn(*args, progress=…)`` in a fresh Python process whose torch runs on ``threads`` CPU threads; returns
    its result. The calling process's thread count is never touched (torch's count is process-wide), so an app
    session's retrain leaves every other session's attacks alone. One process per call (no pool), killed if the
    caller is interrupted; ``progress(text, done, total)`` is relayed from the worker. ``fn`` must be a
    module-level function, its arguments and result picklable (state_dict bytes and numpy arrays rather than
    tensors). A plain subprocess, not multiprocessing's spawn, which would re-run the caller's main script
    (a Streamlit page) in the worker. A ValueError in the worker is raised here as ValueError, anything else as
    RuntimeError (one line)."""
    proc = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        pickle.dump(list(sys.path), proc.stdin)
        pickle.dump((fn, args, threads), proc.stdin)
        proc.stdin.close()
        while True:
            try:
                kind, value = pickle.load(proc.stdout)
            except (EOFError, pickle.UnpicklingError):
                raise RuntimeError(f"the lab's worker process stopped (exit code {proc.wait()}).") from None
            if kind == "progress":
                if progress is not None:
                    progress(*value)
            elif kind == "result":
                proc.wait(timeout=30)  # the worker exits once its result is sent
                return value
            else:
                raise (ValueError if kind == "value-error" else RuntimeError)(value.splitlines()[0] if value else kind)
    finally:
        if proc.poll() is None:  # interrupted (a stopped page, an error): the work is abandoned
            proc.kill()
            proc.wait()
        proc.stdout.close()


def train_isolated(cfg: TrainConfig, models: Sequence[str] = MODELS, ecfg: EvalConfig | None = None,
                   cw: bool = True, progress: Progress | None = None) -> tuple[dict, dict, LabEval | None]:
    """:func:`train_and_evaluate` in a worker process on ``cfg.threads`` threads (:func:`run_isolated`):
    ({name: DigitsCNN}, {name: training seconds}, LabEval or None), bit-identical to a run in-process on
    the same number of threads."""
    states, seconds, ev = run_isolated(train_and_evaluate, cfg, tuple(models), ecfg, cw, threads=cfg.threads,
                                       progress=progress)
    return {name: net_from_bytes(data) for name, data in states.items()}, seconds, ev


def evaluate_isolated(models: Mapping[str, nn.Module], split: Split, ecfg: EvalConfig,
                      progress: Progress | None = None, cw: bool = True) -> LabEval:
    """:func:`evaluate_lab` of ``models`` (nets or Classifiers) on ``split``'s test digits in a worker process
    on ``ecfg.threads`` threads (:func:`run_isolated`)."""
    states = {name: state_bytes(getattr(m, "net", m)) for name, m in models.items()}
    return run_isolated(_evaluate_states, states, split.x_test.numpy(), split.y_test.numpy(), ecfg, cw,
                        threads=ecfg.threads, progress=progress)
