"""``batch_size: auto``: the doubling-then-bisecting search (closed form), and the same search through a
real training step of the image workload with a memory stand-in (bytes autograd saves for backward);
the image workload's training function on a CPU."""

from __future__ import annotations

import math

import pytest
import torch

from orchestrator import autobatch


@pytest.mark.parametrize("budget", [1, 7, 8, 9, 100, 1000, 4096, 65535])
def test_largest_is_the_closed_form_answer_in_logarithmic_probes(budget):
    per_example, fixed = 3, 5  # b fits when 3 b + 5 <= 3 budget + 5: the answer is budget
    found = autobatch.largest(lambda b: per_example * b + fixed <= per_example * budget + fixed, limit=1 << 20)
    assert found.batch == budget and not found.limited
    assert len(found.probes) <= 2 * math.ceil(math.log2(budget + 1)) + 2
    assert found.probes[:3] == (1, 2, 4)[: len(found.probes[:3])]


def test_largest_at_the_limit_and_when_nothing_fits():
    found = autobatch.largest(lambda b: True, start=8, limit=100)
    assert (found.batch, found.limited, found.probes) == (100, True, (8, 16, 32, 64, 100))
    with pytest.raises(autobatch.NothingFits, match="batch_size=4"):
        autobatch.largest(lambda b: False, start=4)
    with pytest.raises(ValueError, match="start=0"):
        autobatch.largest(lambda b: True, start=0)


def test_memory_stand_in_finds_the_batch_a_step_fits_in():
    from orchestrator import memprobe
    from orchestrator.workloads.images import cifar_resnet

    wl = cifar_resnet({"n_train": 40, "width": 4, "blocks": 1})
    cpu = torch.device("cpu")
    meter = memprobe.ActivationLimit(1 << 40)
    with meter():
        wl.loss(wl.model(torch.stack([wl.train[i][0] for i in range(10)])), wl.train.tensors[1][:10]).backward()
    per_10 = meter.peak  # bytes saved for backward by 10 images
    wl.model.zero_grad()
    limit = per_10 * 7  # room for about 70 images' activations
    found = memprobe.largest_batch(wl, cpu, start=8, limit=lambda: memprobe.ActivationLimit(limit)())
    assert 64 <= found.batch <= 72, found  # saved bytes grow linearly with the batch (the weights' part is small)
    assert memprobe.step_fits(wl, found.batch, cpu, lambda: memprobe.ActivationLimit(limit)())
    assert not memprobe.step_fits(wl, found.batch + 1, cpu, lambda: memprobe.ActivationLimit(limit)())
    assert found.probes[:4] == (8, 16, 32, 64) and not found.limited
    assert all(p.grad is None for p in wl.model.parameters())  # the probe leaves no gradients behind


def test_image_training_function_learns_on_a_cpu():
    from orchestrator import session
    from orchestrator.workloads import images

    config = {
        "train": "orchestrator.workloads.images:train",
        "n_train": 200,
        "width": 8,
        "blocks": 1,
        "batch_size": 32,
        "lr": 0.05,
        "optimizer": "momentum",
        "max_epochs": 3,
        "checkpoint_every": 1,
    }
    saves: list = []
    trial = session.Trial(config, function="images.train", sink=lambda m, s: saves.append(s))
    history = session.run(images.train, trial)
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[0]["device"] == "cpu"
    assert history[-1]["val_loss"] < history[0]["val_loss"] or history[-1]["val_error"] < 0.9
    assert all(s is not None and "scaler" in s for s in saves)
    x, y = images.images(50)
    assert x.shape == (50, 3, 32, 32) and int(y.max()) < 10
    assert torch.equal(images.images(50)[0], x)  # the same data in every trial


def test_resolve_auto_replaces_only_auto():
    from orchestrator import memprobe

    cpu = torch.device("cpu")
    config = {
        "workload": "orchestrator.workloads.images:cifar_resnet",
        "n_train": 20,
        "width": 4,
        "blocks": 1,
        "batch_size": "auto",
    }
    limit = lambda: memprobe.ActivationLimit(3 << 20)()  # noqa: E731 - 3 MiB saved for backward
    resolved, found = memprobe.resolve_auto(config, cpu, limit)
    assert found is not None and resolved["batch_size"] == found.batch and 8 <= found.batch < 1000
    assert memprobe.resolve_auto({**config, "batch_size": 32}, cpu) == ({**config, "batch_size": 32}, None)


AUTO_SWEEP = """\
name: {name}
workload: digits_mlp
max_epochs: 1
storage: {storage}
space:
  lr: {{log: [1e-2, 1e-1], per_decade: 1}}
  optimizer: sgd
  width: 32
  batch_size: {batch}
autobatch: {{memory_limit_mb: 0.25}}
asha: {{enabled: false}}
zoom: {{max_rounds: 1}}
"""


@pytest.mark.parametrize(
    "batch, extra, expected",
    [
        ("autoo", "", "space.batch_size: 'autoo': expected a positive integer, a list of them, or auto"),
        ("[auto, 32]", "", "space.batch_size: ['auto', 32]: expected a positive integer, a list of them, or auto"),
        ("0", "", "space.batch_size: 0: expected"),
        ("auto", "autobatch: {start: 64, max: 32}\n", "autobatch.max=32: expected >= autobatch.start=64"),
        ("auto", "autobatch: {memory_limit_mb: -1}\n", "autobatch.memory_limit_mb"),
    ],
)
def test_bad_batch_sizes_are_refused_in_one_line(tmp_path, batch, extra, expected):
    from orchestrator import config
    from orchestrator.errors import ConfigError

    text = AUTO_SWEEP.format(name="bad", storage=tmp_path, batch=batch).replace(
        "autobatch: {memory_limit_mb: 0.25}\n", ""
    )
    with pytest.raises(ConfigError) as caught:
        config.loads(text + extra, "bad.yaml")
    message = str(caught.value)
    assert expected in message and "\n" not in message and message.startswith("bad.yaml"), message


def test_auto_needs_a_bound_and_a_workload(tmp_path, capsys):
    from orchestrator import cli

    path = tmp_path / "cpu.yaml"
    path.write_text(AUTO_SWEEP.format(name="cpu", storage=tmp_path, batch="auto").replace("autobatch:", "#"))
    assert cli.main(["check", str(path)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "space.batch_size: auto: the trials have no GPU (resources.gpu: 0)" in err, err
    text = AUTO_SWEEP.format(name="fn", storage=tmp_path, batch="auto").replace(
        "workload: digits_mlp", "train: orchestrator.workloads.images:train"
    )
    path.write_text(text)
    assert cli.main(["check", str(path)]) == cli.EXIT_BAD_INPUT
    assert "space.batch_size: auto: needs workload:" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_check_finds_the_batch_and_an_auto_sweep_searches_at_it(tmp_path, capsys, local_ray):
    """``sweep check`` reports the largest batch under the stand-in (the precision counts: bf16 saves half
    the bytes); ``batch_size: auto`` resolves to it in a Ray task before the sweep, every trial trains at it,
    and best.json and report.md say it was found automatically."""
    import json
    import re

    import pyarrow.parquet as pq

    from orchestrator import cli, config, memprobe, run_sweep, workloads

    path = tmp_path / "auto.yaml"
    path.write_text(AUTO_SWEEP.format(name="auto", storage=tmp_path / "runs", batch="auto"))
    assert cli.main(["check", str(path)]) == cli.EXIT_OK
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("PASS  batch_fit"))
    n = int(re.search(r"largest batch (\d+) \(cpu, amp off, memory stand-in 0.25 MiB", line).group(1))
    assert f"batch_size={n}" in out  # the other checks ran at the batch found
    limit = memprobe.Search.of(config.load(path)).limit()
    wl = workloads.build("digits_mlp", {"width": 32, "lr": 0.1})
    cpu = torch.device("cpu")
    assert memprobe.step_fits(wl, n, cpu, limit) and not memprobe.step_fits(wl, n + 1, cpu, limit)
    assert memprobe.step_fits(wl, int(n * 1.5), cpu, limit, amp="bf16")  # the configured precision counts

    summary = run_sweep(config.load(path))
    assert f"[sweep] batch_size: auto -> batch {n} (cpu, amp off, memory stand-in 0.25 MiB" in capsys.readouterr().out
    rows = pq.read_table(summary.folder / "trials.parquet").to_pylist()
    assert rows and {json.loads(r["config"])["batch_size"] for r in rows} == {n}
    best = json.loads((summary.folder / "best.json").read_text())
    assert best["batch_size"]["value"] == n and best["batch_size"]["auto"] is True
    assert (
        f"- Batch size: the lr was searched at batch size {n} (found automatically"
        in (summary.folder / "report.md").read_text()
    )
