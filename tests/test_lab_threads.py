"""Robust-training lab: one session's retrain runs in a worker process of its own, so torch's thread count of the
app process — shared by every session's attacks — never changes while it runs, and the weights are bit-identical
to the same training run directly."""

import threading
import time

import torch

from sdsgsm.experiments import lab


def test_a_retrain_on_one_thread_leaves_the_other_threads_count_alone_and_is_bit_identical(tiny_cnn, rand_images):
    from sdsgsm.attacks import build_config, run_attack

    before = torch.get_num_threads()
    app = 2 if before == 1 else before  # an app-like count other than the lab's 1, so a change would show
    torch.set_num_threads(app)
    try:
        cfg = lab.TrainConfig(epochs=1)  # threads = 1, the shipped setting
        result, errors, seen, done = {}, [], [], threading.Event()

        def retrain():  # one session's Retrain
            try:
                result["nets"], _, _ = lab.train_isolated(cfg, ("standard",))
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
            finally:
                done.set()

        worker = threading.Thread(target=retrain)
        worker.start()
        attacks = 0
        while not done.is_set():  # another session attacks meanwhile and reads the count
            seen.append(torch.get_num_threads())
            run_attack(tiny_cnn, rand_images[:1], None, build_config({"steps": 1}), "fgsm")
            attacks += 1
            seen.append(torch.get_num_threads())
            time.sleep(0.01)
        worker.join()
        assert not errors, errors
        assert attacks >= 3 and set(seen) == {app}, (attacks, sorted(set(seen)))
        assert torch.get_num_threads() == app

        torch.set_num_threads(cfg.threads)  # the same training run directly, on the worker's thread count
        direct = lab.train_model("standard", lab.load_split(cfg.seed, cfg.test_size), cfg).state_dict()
        isolated = result["nets"]["standard"].state_dict()
        assert list(direct) == list(isolated)
        assert all(torch.equal(direct[k], isolated[k]) for k in direct)
        assert lab.weights_sha256(direct) == lab.weights_sha256(isolated)
    finally:
        torch.set_num_threads(before)


def test_worker_errors_come_back_as_one_line_and_progress_is_relayed():
    ticks = []
    nets, seconds, ev = lab.train_isolated(lab.TrainConfig(epochs=1, batch_size=512), ("standard",),
                                           progress=lambda *a: ticks.append(a))
    assert ticks == [("training standard: epoch 1/1", 1, 1)] and ev is None and set(nets) == {"standard"}
    try:
        lab.run_isolated(lab.train_and_evaluate, lab.TrainConfig(epochs=1), ("nope",))
    except ValueError as exc:
        assert "Unknown lab model 'nope'" in str(exc) and "\n" not in str(exc)
    else:
        raise AssertionError("no ValueError from the worker")
