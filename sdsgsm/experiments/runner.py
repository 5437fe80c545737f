"""The one experiment runner's shared pieces: data and label selection, method lists, warm-up, the clean
pass and one result class. The benchmark, sweep, transfer matrix, defence grid and lab build on them.

A new experiment is one module here (select the samples with :func:`select`, warm up with :func:`warm_up`,
return an :class:`ExperimentResult`), one CLI module in :mod:`sdsgsm.cli`, one page and its tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sdsgsm.attacks import METHODS, AttackConfig, resolve_labels
from sdsgsm.data import load_cifar10, load_folder, load_gallery
from sdsgsm.memory import run_chunks
from sdsgsm.outputs import package_versions

__all__ = ["ConfigChanged", "ExperimentResult", "UnitStore", "cfg_map", "clean_logits", "fingerprint_model",
           "fingerprint_tensor", "load_benchmark_data", "model_device", "package_versions", "parse_methods",
           "select", "warm_up"]


@dataclass
class ExperimentResult:
    """What every experiment returns. summary: one row per method (or per point / cell); per_sample: one
    row per (method, sample, …); config: every parameter, counts and package versions (JSON-ready);
    stopped: the run ended early (Ctrl-C or a Stop button) and holds the work finished until then."""

    summary: pd.DataFrame
    per_sample: pd.DataFrame
    config: dict
    stopped: bool = False


def result_files(result: ExperimentResult, stem: str, markdown: str | None = None) -> dict[str, bytes]:
    """An experiment's tables as {name: bytes} for ``write_files`` and the app's downloads: ``<stem>.csv``
    (summary), ``<stem>_per_sample.csv``, ``<stem>.md`` (when ``markdown`` is given) and ``<stem>.json`` (config)."""
    files = {f"{stem}.csv": result.summary.to_csv(index=False).encode("utf-8"),
             f"{stem}_per_sample.csv": result.per_sample.to_csv(index=False).encode("utf-8")}
    if markdown is not None:
        files[f"{stem}.md"] = markdown.encode("utf-8")
    files[f"{stem}.json"] = json.dumps(result.config, indent=2, ensure_ascii=False, default=str).encode("utf-8")
    return files


def parse_methods(methods: str | list[str]) -> list[str]:
    """'a,b,c' or a list -> registry names in order, duplicates dropped; unknown names raise ValueError."""
    names = methods.split(",") if isinstance(methods, str) else list(methods)
    out = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    if not out:
        raise ValueError("No methods given; pass --methods a,b,c or --preset table1|table2.")
    bad = [n for n in out if n not in METHODS]
    if bad:
        raise ValueError(f"Unknown method {bad[0]!r}; choose from {', '.join(METHODS)}.")
    return out



# ----------------------------------------------------------------------------- data
def _labels_fit(dataset: str, num_classes: int) -> bool:
    return {"imagenet": num_classes == 1000, "photo": num_classes == 1000, "cifar10": num_classes == 10}[dataset]


def _folder_labels(y: torch.Tensor, classes: list[str], model) -> tuple[torch.Tensor, str]:
    """Map ImageFolder class indices to the model's classes: by name, else by index if the counts match."""
    names = [str(n).lower().replace("_", " ") for n in getattr(model, "labels", [])]
    if classes and all(c.lower().replace("_", " ") in names for c in classes):
        lut = torch.tensor([names.index(c.lower().replace("_", " ")) for c in classes])
        return torch.where(y >= 0, lut[y.clamp_min(0)], y), "folder class names matched to the model's labels"
    if classes and len(classes) == len(names):
        return y, "folder class index (sorted sub-folder names)"
    return torch.full_like(y, -1), "unknown (clean prediction)"


def load_benchmark_data(spec: str, model, limit: int | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, list[str], dict]:
    """Images for a benchmark at the model's input size.

    spec: 'gallery' (20 ImageNet samples, or the 20 CIFAR-10 ones for a model of ≤ 64 px),
    'gallery:imagenet|cifar10|photo', 'cifar10:PATH' (extracted cifar-10-batches-py under
    PATH, test split, 32-px models) or a folder (ImageFolder or flat). Labels that do not
    belong to the model's class set become −1 (the clean prediction is attacked).
    Returns x (N, 3, S, S) in [0, 1], y (N,), N keys, and info (name, label source).
    Raises ImageError/ValueError with a one-sentence message.
    """
    size, k = model.input_size, model.num_classes
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1 (got {limit}).")
    if spec == "gallery" or spec.startswith("gallery:"):
        dataset = spec.partition(":")[2] or ("cifar10" if size <= 64 else "imagenet")
        x, y, keys = load_gallery(dataset, size, limit)
        name, source = f"gallery:{dataset}", "gallery labels"
        if not _labels_fit("photo" if dataset == "photos" else dataset, k):
            y, source = torch.full_like(y, -1), "unknown (clean prediction)"
    elif spec.startswith("cifar10:"):
        if size != 32:
            raise ValueError(f"CIFAR-10 images are 32 px but {model.name} expects {size} px; use a 32-px checkpoint.")
        x, y, _ = load_cifar10(spec.partition(":")[2], limit)
        keys, name = [f"cifar10_test_{i:05d}" for i in range(len(x))], spec
        y, source = (y, "CIFAR-10 labels") if k == 10 else (torch.full_like(y, -1), "unknown (clean prediction)")
    else:
        x, y, classes = load_folder(spec, size, limit)
        y, source = _folder_labels(y, classes, model)
        keys, name = [f"{Path(spec).name}[{i}]" for i in range(len(x))], spec
    y = torch.where((y >= 0) & (y < k), y, torch.full_like(y, -1))
    return x, y, keys, {"name": name, "label_source": source}



# ----------------------------------------------------------------------------- clean pass and warm-up
def model_device(model) -> torch.device:
    for t in (*model.buffers(), *model.parameters()):
        return t.device
    return torch.device("cpu")


def clean_logits(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N, K) clean logits in batches; out of device memory halves the batch (sdsgsm.memory)."""
    def clean(a: int, b: int) -> torch.Tensor:
        with torch.inference_mode():
            return model(x[a:b]).float()

    return torch.cat(run_chunks(clean, len(x), batch_size, what="the clean pass"))


def select(model, x: torch.Tensor, y: torch.Tensor | None, batch_size: int, criterion: str):
    """Clean pass: (labels used, their source, clean-correct mask (N,), indices to attack); warms up."""
    clean = clean_logits(model, x, batch_size)
    y_used, label_source = resolve_labels(None if y is None else y.to(x.device), clean)
    correct = clean.argmax(1) == y_used
    idx = torch.nonzero(correct if criterion == "clean_correct" else torch.ones_like(correct))[:, 0]
    if len(idx) == 0:
        raise ValueError(f"None of the {len(x)} images is classified correctly by {getattr(model, 'name', 'the model')}"
                         "; nothing to attack under the clean-correct criterion (use criterion 'all').")
    return y_used, label_source, correct, idx


def warm_up(model, x: torch.Tensor, method: str, warm: bool) -> None:
    """Untimed: one forward/backward pass (kernel selection, allocator) before the first method, and
    ART's slow import plus the classifier wrapper before an ART method, so no time pays for them."""
    if not warm:
        xb = x[:1].clone().requires_grad_(True)
        with torch.enable_grad():
            torch.autograd.grad(model(xb).float().sum(), xb)
    if METHODS[method].backend == "art":
        import art.attacks.evasion  # noqa: F401

        from sdsgsm.attacks.art_baselines import art_classifier

        with torch.inference_mode():
            k = model(x[:1]).shape[1]
        art_classifier(model, tuple(x.shape[1:]), k)


def cfg_map(methods: list[str], cfgs: dict[str, AttackConfig] | AttackConfig) -> dict[str, AttackConfig]:
    if isinstance(cfgs, AttackConfig):
        return dict.fromkeys(methods, cfgs)
    missing = [m for m in methods if m not in cfgs]
    if missing:
        raise ValueError(f"No AttackConfig given for {', '.join(missing)}.")
    return {m: cfgs[m] for m in methods}


# ----------------------------------------------------------------------------- resumable units
class ConfigChanged(ValueError):
    """A unit store in the output folder was made with another configuration (one line: what changed)."""


def fingerprint_tensor(t: torch.Tensor) -> str:
    """sha256 of a tensor's values (dtype and shape included): the data's part of a run's fingerprint."""
    shape = tuple(t.shape)
    t = t.detach().cpu().contiguous().reshape(-1)
    h = hashlib.sha256(f"{t.dtype}{shape}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def fingerprint_model(model) -> str:
    """sha256 of a model's name, parameters and buffers (its weights, not where they live)."""
    h = hashlib.sha256(str(getattr(model, "name", type(model).__name__)).encode())
    for name, t in sorted(model.state_dict().items()) if hasattr(model, "state_dict") else ():
        h.update(name.encode())
        h.update(fingerprint_tensor(t).encode())
    return h.hexdigest()[:16]


def _native(v):
    """JSON-ready: numpy scalars as Python numbers, tuples as lists, dataclasses as dicts."""
    if isinstance(v, np.generic):
        return v.item()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _native(dataclasses.asdict(v))
    if isinstance(v, dict):
        return {str(k): _native(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_native(x) for x in v]
    return v


def _encode_frame(df: pd.DataFrame) -> dict:
    """A DataFrame as JSON: columns, dtypes and values (floats written with repr, so read back bit for bit)."""
    return {"columns": [str(c) for c in df.columns], "dtypes": [str(t) for t in df.dtypes],
            "data": [_native(df[c].tolist()) for c in df.columns]}


def _decode_frame(rec: dict) -> pd.DataFrame:
    df = pd.DataFrame(dict(zip(rec["columns"], rec["data"])), columns=rec["columns"])
    return df.astype(dict(zip(rec["columns"], rec["dtypes"])))


def _first_change(old, new, path: str = "") -> str | None:
    """The first key path whose value differs between two JSON-ready configurations, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in list(dict.fromkeys([*old, *new])):
            if k not in old or k not in new:
                return f"{path}{k}"
            found = _first_change(old[k], new[k], f"{path}{k}.")
            if found:
                return found
        return None
    return None if old == new else path.rstrip(".")


def _short(v) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 60 else text[:57] + "…"


class UnitStore:
    """The finished units of one run, kept in ``<folder>/units.jsonl`` so a killed run can resume.

    Line 1 is the run's fingerprint (every parameter that changes a number: methods, attack and defence
    parameters, model weights, data values and keys, criterion, batch size; never threads or timing). Each
    further line is one finished unit: its key and its rows (per-sample frames with their dtypes, summary
    dicts), appended, flushed and fsync'd as soon as the unit ends, so a SIGKILL loses at most the unit
    in progress. :meth:`begin` loads the units of an earlier run with the same fingerprint (a different
    one raises :class:`ConfigChanged` naming the first difference); ``fresh`` discards them instead.
    ``note(text)`` is told "resuming: k of n units done". :meth:`clear` removes the store after the final
    files are written.
    """

    NAME = "units.jsonl"

    def __init__(self, folder: str | Path, fresh: bool = False, note: Callable[[str], None] | None = None):
        self.folder, self.fresh, self.note = Path(folder), fresh, note
        self.path = self.folder / self.NAME
        self.units: dict[str, dict] = {}
        self._file = None

    @staticmethod
    def key(*parts) -> str:
        return json.dumps(_native(list(parts)), separators=(",", ":"))

    def begin(self, fingerprint: dict, n_units: int | None = None) -> int:
        """Check the fingerprint against an earlier run's, load its finished units; returns how many."""
        fingerprint = json.loads(json.dumps(_native(fingerprint), default=str))
        if self.path.exists() and not self.fresh:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            try:
                head = json.loads(lines[0])["fingerprint"] if lines else None
            except (ValueError, KeyError, TypeError):
                head = None
            if head is not None:
                changed = _first_change(head, fingerprint)
                if changed is not None:
                    old, new = _lookup(head, changed), _lookup(fingerprint, changed)
                    raise ConfigChanged(f"{self.folder.parent} holds an unfinished run with another {changed} "
                                        f"(was {_short(old)}, now {_short(new)}); rerun with --fresh to start over "
                                        "or choose another --out")
                for line in lines[1:]:
                    try:
                        rec = json.loads(line)
                    except ValueError:  # a line cut by the kill: that unit runs again
                        continue
                    self.units[rec["key"]] = rec
        self.folder.mkdir(parents=True, exist_ok=True)
        keep = [self.path.read_text(encoding="utf-8").splitlines()[0]] if self.units else []
        keep += [json.dumps(rec, separators=(",", ":")) for rec in self.units.values()]
        if not keep:
            keep = [json.dumps({"fingerprint": fingerprint}, separators=(",", ":"))]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(keep) + "\n", encoding="utf-8")
        tmp.replace(self.path)  # the store rewritten without any cut line, then appended to
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        if self.units and self.note is not None:
            self.note(f"resuming: {len(self.units)} of {n_units if n_units is not None else '?'} units done")
        return len(self.units)

    def __contains__(self, key: str) -> bool:
        return key in self.units

    def __len__(self) -> int:
        return len(self.units)

    def get(self, key: str) -> tuple[list[pd.DataFrame], list[dict]]:
        """(frames, rows) of a finished unit."""
        rec = self.units[key]
        return [_decode_frame(f) for f in rec.get("frames", [])], list(rec.get("rows", []))

    def add(self, key: str, frames: list[pd.DataFrame] = (), rows: list[dict] = ()) -> None:
        """Record one finished unit on disk (flushed and fsync'd) before the next one starts."""
        rec = {"key": key, "frames": [_encode_frame(f) for f in frames], "rows": _native(list(rows))}
        self.units[key] = rec
        if self._file is None:
            raise RuntimeError("UnitStore.begin() was not called.")
        self._file.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def clear(self) -> None:
        """Remove the store (the run finished and its final files are written)."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".tmp").unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            shutil.rmtree(self.folder, ignore_errors=True)


def _lookup(d, path: str):
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d
