"""The val_loss-vs-lr plot shows how the pick was made: the parabola it fitted over the rates it used, the
cliff and the cap that moved it, and a coarse round on a fraction of the data apart from the trials the pick
compared; the live best so far does not take a fraction trial's score over a full-data one's. Synthetic
stored results with closed-form curves (no Ray); assertions on the Figure's artists, not pixels."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from orchestrator import analysis, compare, plots, progress, results, zoom

EPOCHS = 6
FRACTION = 0.2
CENTRE = -1.2  # the full data's valley; the fit over 10^-1.6, 10^-1.3, 10^-1.0 has its vertex here
FULL = [-2.0, -1.6, -1.3, -1.0, -0.7]  # round 1, all the data; 10^-0.4 diverges: the cliff
COARSE = [-4.0, -3.0, -2.0, -1.0]  # round 0 on 20% of the data, lower scores (a small set is fit better)


def full_loss(x: float, epoch: int) -> float:
    return 0.3 + 0.2 * (x - CENTRE) ** 2 + 0.1 / epoch


def coarse_loss(x: float, epoch: int) -> float:
    return 0.05 + 0.2 * (x + 2.0) ** 2 + 0.1 / epoch


def tail_mean(x: float, loss=full_loss) -> float:
    """The score the zoom compares at the last epoch: the mean over its last SMOOTH_EPOCHS epochs."""
    epochs = range(EPOCHS - zoom.SMOOTH_EPOCHS + 1, EPOCHS + 1)
    return sum(loss(x, e) for e in epochs) / len(epochs)


def rows_of(tid: str, rnd: int, x: float, loss, data: float, diverge_at: int | None = None) -> list[dict]:
    config = {"workload": "digits_mlp", "max_epochs": EPOCHS, "lr": 10**x, "round": rnd, "group": 0}
    if data < 1:
        config["data_fraction"] = data
    base = {"trial_id": tid, "round": rnd, "group": 0, "lr": 10**x, "config": json.dumps(config)}
    rows = []
    for e in range(1, EPOCHS + 1):
        if diverge_at is not None and e >= diverge_at:
            rows.append({**base, "status": "diverged", "epoch": e, "val_loss": math.inf, "diverged": True})
            break
        v = loss(x, e)
        rows.append({**base, "status": "completed", "epoch": e, "val_loss": v, "train_loss": 0.8 * v})
    return rows


def make_sweep(folder: Path, margin: float | None = 1.0) -> analysis.Summary:
    folder.mkdir(parents=True)
    rows = []
    for i, x in enumerate(COARSE):
        rows += rows_of(f"r0_{i}", 0, x, coarse_loss, FRACTION)
    rows += rows_of("r0_div", 0, 0.0, coarse_loss, FRACTION, diverge_at=2)
    for i, x in enumerate(FULL):
        rows += rows_of(f"r1_{i}", 1, x, full_loss, 1.0)
    rows += rows_of("r1_div", 1, -0.4, full_loss, 1.0, diverge_at=3)
    results.write_trials(folder, rows)
    meta = {
        "metric": "val_loss",
        "param": "lr",
        "max_epochs": EPOCHS,
        "rounds": [
            {"index": 0, "points": 5, "reason": "coarse grid", "brackets": {"0": [-2.0, 2.0]}},
            {"index": 1, "points": 6, "reason": "refine", "brackets": {"0": [-1.25, 0.85]}},
        ],
        "groups": [{"optimizer": "sgd"}],
    }
    if margin is not None:
        meta["cliff_margin"] = margin
    results.write_json(folder / results.ROUNDS, meta)
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"zoom": {"coarse_data": FRACTION}}))
    return analysis.summarise(folder)


def labelled(ax, start: str) -> list:
    return [a for a in (*ax.lines, *ax.collections) if str(a.get_label()).startswith(start)]


def test_fit_parabola_is_the_fit_fit_minimum_takes_its_vertex_from():
    pts = [(x, tail_mean(x)) for x in FULL]
    fit = compare.fit_parabola(pts, reach=zoom.FINAL_REACH)
    assert fit is not None and fit.convex
    assert [p[0] for p in fit.points] == [-1.6, -1.3, -1.0]  # within 0.5 decade of the best, 10^-1.3
    assert fit.vertex == pytest.approx(CENTRE) == zoom.fit_minimum(pts, reach=zoom.FINAL_REACH)[0]
    assert fit.at(CENTRE) == pytest.approx(tail_mean(CENTRE))
    assert compare.fit_parabola(pts[:2]) is None and compare.fit_parabola([(0.0, math.inf)]) is None
    hump = [(-1.0, 1.0), (0.0, 1.2), (1.0, 1.0)]
    concave = compare.fit_parabola(hump, reach=2.0)
    assert concave is not None and not concave.convex
    assert zoom.fit_minimum(hump, reach=2.0) == (-1.0, 1.0)  # the best point, as before
    with pytest.raises(ValueError, match="a="):
        _ = concave.vertex


def test_the_plot_shows_the_fit_the_cliff_and_the_cap_that_moved_the_pick(tmp_path):
    s = make_sweep(tmp_path / "capped")
    # the fit alone gives 10^-1.2; 10^-0.4 diverged (the cliff), one decade below it is 10^-1.4: the pick
    assert math.log10(s.lr) == pytest.approx(-1.4, abs=1e-3) and s.notes
    (ax,) = plots.figure_vs_lr(s).axes
    (fit,) = labelled(ax, "fit the pick used")
    assert fit.get_label() == "fit the pick used (parabola, ±0.5 decade)"
    xs, ys = list(fit.get_xdata()), list(fit.get_ydata())
    assert xs[0] == pytest.approx(10**-1.6) and xs[-1] == pytest.approx(10**-1.0)  # the rates it used
    low = min(range(len(ys)), key=ys.__getitem__)
    assert math.log10(xs[low]) == pytest.approx(CENTRE, abs=0.02)  # its minimum: the fit's vertex
    assert ys[low] == pytest.approx(tail_mean(CENTRE), rel=1e-4)
    (cliff,) = labelled(ax, "cliff")
    assert cliff.get_label() == "cliff: 3x worse or diverged"
    assert list(cliff.get_xdata()) == pytest.approx([10**-0.4] * 2)
    (cap,) = labelled(ax, "cap")
    assert cap.get_label() == "cap: 1 decade below the cliff"
    assert list(cap.get_xdata()) == pytest.approx([10**-1.4] * 2)
    (chosen,) = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert chosen.get_xdata()[0] == pytest.approx(10**-1.4, rel=1e-3)  # the pick sits on the cap


def test_without_a_cliff_guard_the_cliff_is_drawn_and_no_cap(tmp_path):
    s = make_sweep(tmp_path / "free", margin=None)
    assert math.log10(s.lr) == pytest.approx(CENTRE, abs=1e-3) and not s.notes
    (ax,) = plots.figure_vs_lr(s).axes
    assert len(labelled(ax, "fit the pick used")) == 1 and len(labelled(ax, "cliff")) == 1
    assert labelled(ax, "cap") == []


def test_coarse_trials_on_a_fraction_are_drawn_apart_and_left_out_of_the_line_and_the_fit(tmp_path):
    s = make_sweep(tmp_path / "coarse")
    assert s.picked_on == 1.0
    (ax,) = plots.figure_vs_lr(s).axes
    label = "round 0 on 20% of the data (not compared with full-data trials)"
    (apart,) = labelled(ax, label)
    (usual,) = labelled(ax, "round 1")
    assert len(apart.get_paths()[0].vertices) != len(usual.get_paths()[0].vertices)  # not the usual marker
    drawn = [tuple(p) for p in apart.get_offsets().tolist()]
    assert sorted(x for x, _ in drawn) == pytest.approx(sorted(10**x for x in COARSE))
    assert all(y == pytest.approx(tail_mean(math.log10(x), coarse_loss)) for x, y in drawn)
    # the diverged coarse trial (an x on the top edge, round 0's colour) still marks a divergence
    xs = [p for c in ax.collections for p in c.get_offsets().tolist() if p[0] == pytest.approx(1.0)]
    assert len(xs) == 1
    # the grey line: the full-data trials only (a coarse trial's score would be far lower)
    (grey,) = labelled(ax, f"at epoch {s.epoch}")
    line = list(zip(grey.get_xdata(), grey.get_ydata()))
    assert [math.log10(x) for x, _ in line] == pytest.approx(FULL)
    assert [y for _, y in line] == pytest.approx([tail_mean(x) for x in FULL])
    # the fit: over the full-data rates near their best, not the coarse round's lower scores at 10^-2
    trace = plots.pick_trace(s)
    assert trace.fit is not None and [p[0] for p in trace.fit.points] == pytest.approx([-1.6, -1.3, -1.0])


def test_the_live_best_so_far_is_a_full_data_trials_once_one_reported():
    t = progress.Tally()
    t.start("coarse", {"round": 0, "lr": 1e-2, "max_epochs": EPOCHS, "data_fraction": FRACTION})
    t.result("coarse", {"epoch": 1, "val_loss": 0.1})
    assert t.best_trial == "coarse" and t.best == 0.1  # only fraction trials so far: they are what is known
    t.start("full", {"round": 1, "lr": 10**-1.2, "max_epochs": EPOCHS})
    t.result("full", {"epoch": 1, "val_loss": 0.4})
    assert t.best_trial == "full" and t.best == 0.4  # worse than the coarse 0.1, but on all of the data
    t.result("coarse", {"epoch": 2, "val_loss": 0.05})
    t.start("full2", {"round": 1, "lr": 1e-1, "max_epochs": EPOCHS})
    t.result("full2", {"epoch": 1, "val_loss": 0.5})
    t.result("full2", {"epoch": 2, "val_loss": 0.35})
    assert (t.best_trial, t.best, t.best_epoch) == ("full2", 0.35, 2)
    line = t.status_line(10.0)
    assert "best val_loss 0.3500 (lr 0.1, trial full2, epoch 2)" in line
    again = progress.Tally.from_state(json.loads(json.dumps(asdict(t))))
    assert again.best_data == 1.0 and again.best_trial == "full2"


def test_a_confirmed_pick_shows_the_fit_on_the_fraction_it_was_made_from(tmp_path):
    # rounds 0-1 on 20% of the data around 10^-2, then one full-data trial at the pick (zoom.coarse_rounds)
    folder = tmp_path / "confirmed"
    folder.mkdir()
    subset = [-4.0, -3.0, -2.0, -1.0, -2.3, -1.7]
    rows = [r for i, x in enumerate(subset) for r in rows_of(f"s{i}", int(i >= 4), x, coarse_loss, FRACTION)]
    rows += rows_of("confirm", 2, -2.0, full_loss, 1.0)
    results.write_trials(folder, rows)
    index = [{"index": k, "points": 1, "reason": "r", "brackets": {"0": [-2.0, 1.0]}} for k in range(3)]
    meta = {"metric": "val_loss", "param": "lr", "max_epochs": EPOCHS, "rounds": index, "cliff_margin": 1.0}
    results.write_json(folder / results.ROUNDS, meta)
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"zoom": {"coarse_data": FRACTION, "coarse_rounds": 2}}))
    s = analysis.summarise(folder)
    assert s.confirmed == 2 and s.lr == pytest.approx(0.01)
    trace = plots.pick_trace(s)
    assert trace.data == FRACTION and trace.fit is not None  # the search's fit, not the one full-data trial
    assert [p[0] for p in trace.fit.points] == pytest.approx([-2.3, -2.0, -1.7])
    assert trace.free == pytest.approx(-2.0, abs=0.02)
    (ax,) = plots.figure_vs_lr(s).axes
    (line,) = labelled(ax, "fit the pick used on 20% of the data")
    assert min(line.get_ydata()) == pytest.approx(tail_mean(-2.0, coarse_loss), rel=0.02)
