"""The report aggregator on synthetic stored results (no Ray): the choice, the per-law / per-optimizer bests,
the train/validation gap, the plots and the terminal table; ``sweep report`` errors are one line, exit 2."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator import analysis, cli, curves, plots, report, results, zoom

MAX_EPOCHS = 8
# group 0: sgd with the default (constant) law, best near 1e-2; group 1: adam + cosine, best near 1e-3, lower
GROUPS = [{"optimizer": "sgd"}, {"optimizer": "adam", "schedule": "cosine"}]
CENTRE = {0: -2.0, 1: -3.0}
FLOOR = {0: 0.30, 1: 0.20}


def val_loss(group: int, lr: float, epoch: int) -> float:
    return FLOOR[group] + 0.5 * (math.log10(lr) - CENTRE[group]) ** 2 + 1.0 / epoch


def score(group: int, lr: float, epoch: int = MAX_EPOCHS) -> float:
    """What the zoom compares: the metric averaged over the last few epochs (zoom.SMOOTH_EPOCHS)."""
    epochs = range(max(1, epoch - zoom.SMOOTH_EPOCHS + 1), epoch + 1)
    return sum(val_loss(group, lr, e) for e in epochs) / len(epochs)


def trial_rows(tid, rnd, group, lr, epochs, status, train_factor=0.5, diverge_at=None, error=None):
    config = {
        "workload": "digits_mlp",
        "max_epochs": MAX_EPOCHS,
        "seed": 0,
        "_cpus": 1.0,
        "lr": lr,
        "round": rnd,
        "group": group,
        **GROUPS[group],
    }
    base = {
        "trial_id": tid,
        "round": rnd,
        "group": group,
        "lr": lr,
        "status": status,
        "error": error,
        "config": json.dumps(config, sort_keys=True),
    }
    if epochs == 0:
        return [{**base, "epoch": None}]
    rows = []
    for e in range(1, epochs + 1):
        if diverge_at is not None and e >= diverge_at:
            rows.append(
                {
                    **base,
                    "epoch": e,
                    "train_loss": math.inf,
                    "val_loss": math.inf,
                    "val_error": 1.0,
                    "diverged": True,
                    "lr_epoch": lr,
                }
            )
            break
        v = val_loss(group, lr, e)
        rows.append(
            {
                **base,
                "epoch": e,
                "val_loss": v,
                "train_loss": v * train_factor,
                "val_error": v / 4,
                "diverged": False,
                "lr_epoch": lr,
                "epoch_seconds": 0.5,
            }
        )
    return rows


def make_sweep(folder: Path, train_factor: float = 0.5, rounds_json: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    n = 0
    for group in (0, 1):
        for lr in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
            n += 1
            far = abs(math.log10(lr) - CENTRE[group]) >= 2
            rows += trial_rows(
                f"r0g{group}_{n:02d}",
                0,
                group,
                lr,
                4 if far else MAX_EPOCHS,
                "stopped" if far else "completed",
                train_factor,
            )
    rows += trial_rows("r0g1_div", 0, 1, 1.0, 2, "diverged", diverge_at=2)
    rows += trial_rows("r0g0_err", 0, 0, 1.0, 0, "errored", error="RuntimeError: boom")
    for lr in (10**-3.5, 10**-2.5):  # round 1 refines group 1 around 1e-3
        n += 1
        rows += trial_rows(f"r1g1_{n:02d}", 1, 1, lr, MAX_EPOCHS, "completed", train_factor)
    results.write_trials(folder, rows)
    if rounds_json:
        results.write_json(
            folder / results.ROUNDS,
            {
                "metric": "val_loss",
                "param": "lr",
                "max_epochs": MAX_EPOCHS,
                "rounds": [
                    {
                        "index": 0,
                        "points": 12,
                        "reason": "coarse grid",
                        "brackets": {"0": [-3.0, 2.0], "1": [-3.0, 2.0]},
                    },
                    {
                        "index": 1,
                        "points": 2,
                        "reason": "group 1: smooth minimum at 10^-3.00 (epoch 8): refine +-1.00 decades",
                        "brackets": {"1": [-3.0, 1.0]},
                    },
                ],
                "stop_reason": "round budget spent (2 rounds)",
                "groups": GROUPS,
            },
        )
    return folder


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def test_build_chooses_the_best_group_and_writes_everything(tmp_path):
    folder = make_sweep(tmp_path / "sweep")
    s = report.build(folder)
    # group 1 (adam + cosine) is lower everywhere near its minimum at 1e-3; the fit is symmetric there
    assert s.chosen["optimizer"] == "adam" and s.chosen["schedule"] == "cosine"
    assert s.lr == pytest.approx(1e-3, rel=1e-6)
    assert s.epoch == MAX_EPOCHS
    assert s.value == pytest.approx(score(1, 1e-3))
    assert "_cpus" not in s.chosen and "round" not in s.chosen and "group" not in s.chosen
    rows = pq.read_table(folder / "trials.parquet").to_pylist()
    assert s.epochs == sum(1 for r in rows if r["epoch"] is not None)  # the errored trial's row is no epoch
    assert s.trials == 14 and s.fte == pytest.approx(s.epochs / MAX_EPOCHS)

    best = json.loads((folder / "best.json").read_text())
    assert best["config"] == s.chosen and best["lr"] == s.lr and best["best_trial"]["lr"] == pytest.approx(1e-3)
    assert best["best_trial"]["status"] == "completed"

    md = (folder / "report.md").read_text()
    assert "Chosen learning rate: 0.001**" in md
    assert '"optimizer": "adam"' in md and '"schedule": "cosine"' in md  # the chosen configuration, whole
    assert "group 1: smooth minimum at 10^-3.00" in md and "coarse grid" in md  # why each round
    assert "0.0001 .. 0.01" in md  # round 1's bracket, 10^(-3 +- 1)
    assert "round budget spent" in md and f"{s.epochs} epochs = {s.fte:.2f} FTE" in md
    assert "errored" in md and "diverged" in md and "RuntimeError: boom" in md
    assert "val_curves.png" in md and "val_loss_vs_lr.png" in md


def test_best_per_law_and_per_optimizer(tmp_path):
    folder = make_sweep(tmp_path / "sweep")
    report.build(folder)
    md = (folder / "report.md").read_text()

    def table(title: str) -> dict[str, list[str]]:
        block = md.split(f"## Best learning rate per {title}")[1].split("\n\n")[1]
        rows = [line.strip("|").split("|") for line in block.splitlines()[2:]]
        return {r[0].strip(): [c.strip() for c in r[1:]] for r in rows}

    laws = table("decay law")
    assert set(laws) == {"constant", "cosine"}  # 'constant' where the config has no schedule
    assert laws["constant"][1] == "0.01" and laws["cosine"][1] == "0.001"
    assert float(laws["cosine"][2]) == pytest.approx(score(1, 1e-3), abs=1e-4)
    assert float(laws["constant"][2]) == pytest.approx(score(0, 1e-2), abs=1e-4)
    optimizers = table("optimizer")
    assert set(optimizers) == {"sgd", "adam"}
    assert optimizers["sgd"][1] == "0.01" and optimizers["adam"][1] == "0.001"
    assert list(optimizers) == ["adam", "sgd"]  # best first

    bests = {
        b.key: b for b in curves.best_by(curves.trial_curves(results.read_trials(folder), "val_loss"), curves.law_of)
    }
    assert bests["constant"].epoch == MAX_EPOCHS and bests["constant"].trials == 6


def test_train_validation_gap_verdicts(tmp_path):
    over = report.build(make_sweep(tmp_path / "over", train_factor=0.1))
    assert over.warnings and "overfitting" in over.warnings[0]
    assert "**Warning:** Train/validation gap" in (over.folder / "report.md").read_text()
    leak = report.build(make_sweep(tmp_path / "leak", train_factor=1.5))
    assert leak.warnings and "leak" in leak.warnings[0]
    normal = report.build(make_sweep(tmp_path / "normal", train_factor=0.8))
    assert not normal.warnings
    assert "(normal)" not in (normal.folder / "report.md").read_text()
    assert ": normal" in (normal.folder / "report.md").read_text()


def test_plots_are_valid_pngs(tmp_path):
    folder = make_sweep(tmp_path / "sweep")
    report.build(folder)
    for name in ("val_loss_vs_lr.png", "val_curves.png"):
        width, height = png_size(folder / name)
        assert 400 <= width <= 2000 and 300 <= height <= 1500, (name, width, height)
        assert (folder / name).stat().st_size > 10_000  # drawn, not blank


def test_plot_vs_lr_draws_every_trial_the_chosen_rate_and_the_bracket(tmp_path):
    folder = make_sweep(tmp_path / "sweep")
    s = report.build(folder)
    best = json.loads((folder / "best.json").read_text())
    fig = plots.figure_vs_lr(s)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    # one marker per trial that reported a result (the errored one reported none): 13 of the 14
    filled, hollow = [], []
    for c in ax.collections:
        points = [tuple(p) for p in c.get_offsets().tolist()]
        (hollow if len(c.get_facecolors()) == 0 else filled).extend(points)
    expected = {}  # lr -> y, from make_sweep's closed form
    for group in (0, 1):
        for lr in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
            far = abs(math.log10(lr) - CENTRE[group]) >= 2  # stopped at epoch 4: scored there, hollow
            expected[(group, lr)] = (score(group, lr, 4) if far else score(group, lr), far)
    for lr in (10**-3.5, 10**-2.5):
        expected[(1, lr)] = (score(1, lr), False)
    assert len(filled) + len(hollow) == 13
    for (group, lr), (y, is_hollow) in expected.items():
        assert any(
            math.isclose(x, lr, rel_tol=1e-9) and math.isclose(v, y, rel_tol=1e-9)
            for x, v in (hollow if is_hollow else filled)
        ), (group, lr, y, is_hollow)
    top = max(r["val_loss"] for r in results.read_trials(folder) if r["epoch"] and math.isfinite(r["val_loss"]))
    assert (1.0, pytest.approx(1.5 * top)) in filled  # the diverged trial: an x on the top edge
    # the chosen rate: one dashed vertical line at best.json's lr
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [best["lr"], best["lr"]] == [s.lr, s.lr]
    # the chosen group's (1) last bracket, round 1's 10^(-3 +- 1), shaded
    (span,) = ax.patches
    assert span.get_x() == pytest.approx(1e-4) and span.get_x() + span.get_width() == pytest.approx(1e-2)
    assert "round 1" in span.get_label()


def test_plot_curves_draws_the_finalists_and_the_winner_thickest(tmp_path):
    folder = make_sweep(tmp_path / "sweep")
    s = report.build(folder)
    fig = plots.figure_curves(s)
    (ax,) = fig.axes
    solid = [line for line in ax.lines if line.get_linestyle() == "-"]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(solid) == len(dashed) == plots.FINALISTS  # 8 trials reached epoch 8: the 6 best, train dashed
    widest = max(solid, key=lambda line: line.get_linewidth())
    assert all(line.get_linewidth() < widest.get_linewidth() for line in solid if line is not widest)
    assert widest.get_label().startswith(f"lr {s.best_trial['lr']:.3g} ") and widest.get_label().endswith("best")
    assert list(widest.get_ydata()) == pytest.approx([val_loss(1, 1e-3, e) for e in range(1, MAX_EPOCHS + 1)])
    finalists = sorted(
        (
            (score(g, lr), lr)
            for g, lrs in ((0, (1e-3, 1e-2, 1e-1)), (1, (1e-4, 1e-3, 1e-2, 10**-3.5, 10**-2.5)))
            for lr in lrs
        )
    )[: plots.FINALISTS]
    assert sorted(line.get_label().split()[1] for line in solid) == sorted(f"{lr:.3g}" for _, lr in finalists)
    (compared,) = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert list(compared.get_xdata()) == [MAX_EPOCHS, MAX_EPOCHS]


def test_terminal_table_lists_every_trial(tmp_path):
    folder = make_sweep(tmp_path / "sweep")
    text = report.terminal_table(folder)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["trial", "round"] and "group" in lines[0] and "law" in lines[0]
    body = [line for line in lines[2:] if not line.startswith(("*", "columns:", "Cost in real units:", "Advice:"))]
    assert len(body) == 14
    starred = [line for line in body if " * " in line]
    assert len(starred) == 1 and "0.001" in starred[0] and "adam" in starred[0] and "cosine" in starred[0]
    errored = next(line for line in body if line.startswith("r0g0_err"))
    assert "errored" in errored and " 0 " in errored and "n/a" in errored
    diverged = next(line for line in body if line.startswith("r0g1_div"))
    assert "diverged" in diverged and "inf" in diverged
    assert lines[-4] == "columns: lowest = lowest at any epoch, last = at the last epoch"
    assert lines[-3] == f"* best trial run: lr 0.001, val_loss {score(1, 1e-3):.4f} (mean of epochs 6-8)"
    # no sweep.yaml: 1 CPU and no GPU per trial; no ended_at in these rows: no training span
    assert lines[-2].startswith("Cost in real units: training span n/a, ") and "0 GPU-hours" in lines[-2]
    assert lines[-1].startswith("Advice: ")


def test_report_works_without_rounds_json(tmp_path):
    """An interrupted sweep copied off a cluster may lack rounds.json: the report still comes out."""
    folder = make_sweep(tmp_path / "sweep", rounds_json=False)
    s = report.build(folder)
    assert s.chosen["optimizer"] == "adam" and s.rounds == [] and s.fte == pytest.approx(s.epochs / MAX_EPOCHS)
    assert "n/a (interrupted?)" in (folder / "report.md").read_text()


def test_cli_report_prints_the_summary_line(tmp_path, capsys):
    folder = make_sweep(tmp_path / "sweep")
    assert cli.main(["report", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "chosen lr=0.001" in out and str(folder) in out


def _bad_folders(tmp_path: Path) -> list[tuple[Path, str]]:
    cases = []
    no_columns = tmp_path / "columns"
    no_columns.mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), no_columns / "trials.parquet")
    cases.append((no_columns, "missing columns"))
    empty = tmp_path / "norows"
    empty.mkdir()
    results.write_trials(empty, [])
    cases.append((empty, "holds no trial results"))
    no_metric = tmp_path / "nometric"
    no_metric.mkdir()
    results.write_trials(no_metric, trial_rows("t", 0, 0, 0.01, 0, "errored", error="crashed"))
    cases.append((no_metric, "no trial reported a metric"))
    bad_json = make_sweep(tmp_path / "badjson")
    (bad_json / "rounds.json").write_text("{not json")
    cases.append((bad_json, "corrupt JSON"))
    truncated = make_sweep(tmp_path / "truncated")
    data = (truncated / "trials.parquet").read_bytes()
    (truncated / "trials.parquet").write_bytes(data[: len(data) // 2])
    cases.append((truncated, "corrupt Parquet"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    cases.append((a_file, "no such sweep folder"))
    return cases


def test_cli_report_bad_results_one_line_exit_2(tmp_path, capsys):
    for folder, expected in _bad_folders(tmp_path):
        assert cli.main(["report", str(folder)]) == 2, folder
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert err.count("\n") == 0 and err.startswith("sweep: error: ") and expected in err, (folder, err)
        assert str(folder) in err
        assert not (folder / "report.md").exists() if folder.is_dir() else True


def test_terminal_table_raises_results_error(tmp_path):
    with pytest.raises(results.ResultsError, match="no such sweep folder"):
        report.terminal_table(tmp_path / "absent")


def test_the_report_says_when_the_pick_was_kept_below_the_cliff(tmp_path):
    folder = tmp_path / "cliff"
    folder.mkdir()
    # one lucky trial at 10^-1.5 looks best; 1e-1 did 4.8x worse: the cliff
    values = {1e-4: 0.9, 1e-3: 0.35, 1e-2: 0.30, 10**-1.5: 0.25, 1e-1: 1.2}
    rows = []
    for i, (lr, v) in enumerate(values.items()):
        for r in trial_rows(f"t{i}", 0, 0, lr, MAX_EPOCHS, "completed"):
            rows.append({**r, "val_loss": v, "train_loss": v / 2})
    results.write_trials(folder, rows)
    meta = {
        "metric": "val_loss",
        "param": "lr",
        "max_epochs": MAX_EPOCHS,
        "stop_reason": "round budget spent",
        "rounds": [{"index": 0, "points": 5, "reason": "coarse grid", "brackets": {"0": [-2.5, 1.5]}}],
        "groups": [GROUPS[0]],
        "cliff_margin": 1.0,
    }
    results.write_json(folder / results.ROUNDS, meta)
    s = report.build(folder)
    assert s.lr == pytest.approx(0.01)  # 10^(-1 - 1.0)
    assert "kept 1 decade(s) below lr 0.1" in (folder / "report.md").read_text()
    assert json.loads((folder / "best.json").read_text())["notes"] == s.notes and len(s.notes) == 1
    # a sweep stored before the guard existed (no key) keeps the plain fit, and no note
    del meta["cliff_margin"]
    results.write_json(folder / results.ROUNDS, meta)
    plain = report.build(folder)
    assert plain.lr > 0.011 and plain.notes == []


def test_a_pick_between_trials_stands_next_to_its_own_interpolated_score_everywhere(tmp_path):
    """The usual case in a real sweep: the smooth minimum falls between the trials. Every output names the
    chosen rate next to its own score, interpolated in log-lr between the two trials that flank it and
    labelled so, never next to the best trial's score; the best trial's score is labelled as the best trial's."""
    folder = tmp_path / "between"
    folder.mkdir()
    centre = -2.3  # valley of group 0's curve moved here: the parabola through -3, -2.5, -2 has its vertex at -2.3
    xs = {0: [-4.0, -3.0, -2.0, -1.0], 1: [-2.5, -1.5]}
    rows = []
    for rnd, points in xs.items():
        for i, x in enumerate(points):
            for r in trial_rows(f"r{rnd}_{i}", rnd, 0, 10**x, MAX_EPOCHS, "completed"):
                v = FLOOR[0] + 0.5 * (x - centre) ** 2 + 1.0 / r["epoch"]
                rows.append({**r, "val_loss": v, "train_loss": 0.8 * v})
    results.write_trials(folder, rows)
    results.write_json(
        folder / results.ROUNDS,
        {
            "metric": "val_loss",
            "param": "lr",
            "max_epochs": MAX_EPOCHS,
            "stop_reason": "round budget spent (2 rounds)",
            "rounds": [
                {"index": 0, "points": 4, "reason": "coarse grid", "brackets": {"0": [-2.5, 1.5]}},
                {"index": 1, "points": 2, "reason": "refine", "brackets": {"0": {"low": 0.001, "high": 0.1}}},
            ],
            "groups": [GROUPS[0]],
            "cliff_margin": 1.0,
        },
    )
    s = report.build(folder)
    chosen = 0.005012  # nice(10 ** -2.3): no trial ran there
    tried = {r["lr"] for r in rows}
    assert s.lr == chosen and all(abs(lr - chosen) > 1e-3 * chosen for lr in tried)
    tail = sum(1.0 / e for e in (6, 7, 8)) / 3
    best_score = 0.5 * 0.2**2 + FLOOR[0] + tail  # the trial at 10^-2.5, 0.2 decades from the floor
    t = (math.log10(chosen) + 2.5) / 0.5  # from 10^-2.5 (r1_0) to 10^-2 (r0_2)
    own = FLOOR[0] + tail + 0.5 * 0.2**2 + t * 0.5 * (0.3**2 - 0.2**2)
    assert s.score.value == pytest.approx(own) and s.score.interpolated and s.score.trials == ("r1_0", "r0_2")

    best = json.loads((folder / "best.json").read_text())
    assert best["lr"] == best["config"]["lr"] == chosen and best["interpolated"] is True
    assert best["val_loss"] == pytest.approx(own) == best["score"]["value"]  # the chosen rate's own, not r1_0's
    assert best["score"]["statistic"] == "mean of epochs 6-8" and best["score"]["interpolated"] is True
    assert best["score"]["source"] == "interpolated between the trials at 0.003162 and 0.01, not trained"
    assert best["best_trial"]["trial_id"] == "r1_0" and best["best_trial"]["lr"] == pytest.approx(10**-2.5)
    assert best["best_trial"]["score"] == pytest.approx(best_score)
    assert best["best_trial"]["statistic"] == "mean of epochs 6-8"
    said = (
        f"lr=0.005012  val_loss={own:.4f} (mean of epochs 6-8, interpolated between the trials at 0.003162 "
        f"and 0.01, not trained)  band lr "
    )

    md = (folder / "report.md").read_text()
    assert "**Chosen learning rate: 0.005012**" in md and f"- Chosen: {said}" in md
    assert f"- Best trial run: `r1_0` at lr 0.003162: val_loss {best_score:.4f} (mean of epochs 6-8)" in md
    assert "The chosen rate is a fit, not a trial that ran: retrain it fully to confirm." in md
    trials_tables = md[: md.index("## Cost per round")] + md[md.index("## Best learning rate per decay law") :]
    assert "0.005012 |" not in trials_tables  # no row of a table of trials claims a trial at the chosen rate
    assert "| 0.001 .. 0.1 | 0.003162 .. 0.03162 |" in md  # round 1: the zoom's bracket, then the rates tried

    table = report.terminal_table(folder).splitlines()
    assert table[-3] == f"* best trial run: lr 0.003162, val_loss {best_score:.4f} (mean of epochs 6-8)"
    (starred,) = [line for line in table[2:-1] if " * " in line]
    assert starred.startswith("r1_0 *") and " 0.003162 " in starred
    assert s.line().startswith(f"chosen {said}")

    fig = plots.figure_vs_lr(s)
    (dashed,) = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]
    assert list(dashed.get_xdata()) == [chosen, chosen]


def test_a_pick_on_a_trial_is_not_called_a_fit(tmp_path):
    folder = make_sweep(tmp_path / "sweep")
    s = report.build(folder)
    assert s.lr == 0.001 and not s.interpolated
    assert json.loads((folder / "best.json").read_text())["interpolated"] is False
    assert "is a fit, not a trial" not in (folder / "report.md").read_text()
    assert "fitted between trials" not in s.line() + report.terminal_table(folder)


def test_the_trial_table_is_built_once_from_the_rows(tmp_path):
    folder = make_sweep(tmp_path / "sweep")
    rows = results.read_trials(folder)
    table = curves.trial_curves(rows, "val_loss")
    assert [c.trial for c in table] == list(dict.fromkeys(r["trial_id"] for r in rows))  # first-seen order
    div = next(c for c in table if c.trial == "r0g1_div")
    assert div.status is results.TrialStatus.DIVERGED and div.epochs == (1, 2) and div.values[-1] == math.inf
    assert div.observation().diverged and div.score_at(2) == math.inf and div.best == div.values[0]
    err = next(c for c in table if c.trial == "r0g0_err")
    assert err.status is results.TrialStatus.ERRORED and err.epochs == () and err.error == "RuntimeError: boom"
    assert err.final("val_loss") is None and err.best == math.inf and err.law == "constant"
    win = next(c for c in table if c.trial == "r1g1_12")
    assert win.optimizer == "adam" and win.law == "cosine" and win.at(8, "val_loss") == val_loss(1, win.lr, 8)
    assert win.score_at(MAX_EPOCHS) == pytest.approx(score(1, win.lr))
    with pytest.raises(ValueError, match="metric='loss'"):
        curves.trial_curves(rows, "loss")
    s = report.build(folder)
    assert s.table == table and s.group == 1 and s.max_epochs == MAX_EPOCHS  # the summary carries the same table


def test_sweep_report_summarises_the_sweep_once(tmp_path, monkeypatch, capsys):
    folder = make_sweep(tmp_path / "sweep")
    calls = []
    real = analysis.summarise
    monkeypatch.setattr(analysis, "summarise", lambda f: calls.append(f) or real(f))
    assert cli.main(["report", str(folder)]) == 0
    out = capsys.readouterr().out
    assert len(calls) == 1 and "* best trial run: lr 0.001" in out and "\nchosen lr=0.001  val_loss=" in out


def test_analysis_and_report_import_neither_ray_torch_nor_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys; import orchestrator.analysis, orchestrator.curves, orchestrator.noise, orchestrator.plots, "
        "orchestrator.report; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch', 'matplotlib'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
