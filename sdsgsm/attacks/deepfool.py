"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016) with the exact arithmetic of IBM ART 1.20.1's
``art.attacks.evasion.DeepFool`` (MIT licence), computed with fewer network passes.

ART's DeepFool asks its classifier for one class gradient at a time, and ART's PyTorchClassifier runs
a fresh forward pass for each (``nb_grads`` forward passes per iteration), plus one more forward pass
for the prediction, and it takes a last round of gradients after the final step that nothing uses.
Here one forward pass per iteration gives the logits (the prediction) and, by one backward pass per
class on the shared graph, the same class gradients; the final, unused round is skipped. The update
is ART's, step for step, in numpy float32 (so the result is ART's, bit for bit where the network's
forward and backward passes are deterministic):

* the classes: the ``nb_grads`` most likely classes of the clean prediction (the union over the
  batch), or all classes when ``nb_grads`` ≥ K; k̂ = the clean prediction (not the label: ART's
  DeepFool ignores y);
* per iteration, for every sample: w_l = ∇f_l − ∇f_k̂, f'_l = f_l − f_{idx(k̂)}, where ART indexes
  the logits with k̂'s position in the class list, not with k̂ itself (kept as ART has it, so the
  numbers stay ART's); l = argmin |f'_l| / (‖w_l‖₂ + 1e-7) over l ≠ k̂; r = |f'_l| / (‖w_l‖₂² + 1e-7) · w_l,
  added to the samples still classified as k̂ and clipped to [0, 1];
* at the end x_adv = clip(x + (1 + overshoot)·(x_T − x), 0, 1).
"""

from __future__ import annotations

import numpy as np
import torch

TOL = 10e-8  # ART's small scalar against division by zero


class _Pass:
    """One forward pass of x (N, C, H, W) float32 with its graph kept: ``logits`` (N, K) numpy, and
    :meth:`grads` the input gradient of each logit in ``labels`` (N, L, C, H, W), one backward pass per
    class on that graph (ART's ``class_gradient`` runs a forward pass per class for the same numbers)."""

    def __init__(self, model, x: np.ndarray, device):
        self.x = torch.from_numpy(x).to(device).requires_grad_(True)
        with torch.enable_grad():
            self.out = model(self.x)
        self.logits = self.out.detach().cpu().numpy()

    def grads(self, labels: np.ndarray) -> np.ndarray:
        with torch.enable_grad():
            g = [torch.autograd.grad(self.out[:, int(k)].sum(), self.x, retain_graph=True)[0].cpu().numpy()
                 for k in labels]
        return np.stack(g, 1)


def deepfool(model, x: np.ndarray, *, max_iter: int, epsilon: float, nb_grads: int, nb_classes: int,
             device=None) -> np.ndarray:
    """ART DeepFool's result on x (N, C, H, W) float32 in [0, 1] as one batch (module docstring).

    Args: model (B, C, H, W) -> (B, K) logits; max_iter the iterations; epsilon the overshoot;
    nb_grads the classes per sample; nb_classes K. Returns x_adv (N, C, H, W) float32 in [0, 1].
    """
    x = x.astype(np.float32)
    device = device if device is not None else torch.device("cpu")
    first = _Pass(model, x, device)
    preds = first.logits
    if nb_grads < nb_classes:
        labels_set = np.unique(np.argsort(-preds, axis=1)[:, :nb_grads])
    else:
        labels_set = np.arange(nb_classes)
    sorter = np.arange(len(labels_set))
    batch = x.copy()
    f_batch = preds
    fk_hat = np.argmax(f_batch, axis=1)
    grd = first.grads(labels_set)
    del first
    rows = np.arange(len(batch))
    active = rows
    for step in range(max_iter):
        labels_indices = sorter[np.searchsorted(labels_set, fk_hat, sorter=sorter)]
        grad_diff = grd - grd[rows, labels_indices][:, None]
        f_diff = f_batch[:, labels_set] - f_batch[rows, labels_indices][:, None]
        norm = np.linalg.norm(grad_diff.reshape(len(grad_diff), len(labels_set), -1), axis=2) + TOL
        value = np.abs(f_diff) / norm
        value[rows, labels_indices] = np.inf
        l_var = np.argmin(value, axis=1)
        absolute1 = abs(f_diff[rows, l_var])
        draddiff = grad_diff[rows, l_var].reshape(len(grad_diff), -1)
        pow1 = pow(np.linalg.norm(draddiff, axis=1), 2) + TOL
        r_var = (absolute1 / pow1).reshape((-1,) + (1,) * (x.ndim - 1))
        r_var = r_var * grad_diff[rows, l_var]
        batch[active] = np.clip(batch[active] + r_var[active] * (1.0 - 0.0), 0.0, 1.0)
        now = _Pass(model, batch, device)  # the prediction and, if needed, the gradients at the new point
        f_batch = now.logits
        active = np.where(np.argmax(f_batch, axis=1) == fk_hat)[0]
        if active.size == 0 or step == max_iter - 1:
            break  # ART takes one more round of gradients here; nothing reads it
        grd = now.grads(labels_set)
    x_adv = x + (1 + epsilon) * (batch - x)
    return np.clip(x_adv, 0.0, 1.0, out=x_adv)


__all__ = ["deepfool"]
