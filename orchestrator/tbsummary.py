"""What the sweep writes into TensorBoard that needs no Ray: the HParams protos (tensorboardX's, no
TensorFlow needed), Text entries, and the pick after the report (``write_pick``). ``board``'s Tune callbacks
write through these; ``board``'s module doc lists the runs and tags.

- ``session_start_summary``/``session_end_summary``: a trial's HParams session (its searched values; success
  or failure); ``hparams_experiment``: the HParams columns of the sweep (``tbnames.Searched``) and its metrics;
- ``add_text``: a Text-tab entry under its own tag;
- ``write_pick``: the chosen rate into ``FOLDER/_sweep`` from an ``analysis.Summary`` and its best.json
  (``pick_of``: what TensorBoard shows of best.json; ``pick_markdown``: its Text summary), with the
  metric-vs-lr figure (``plots.figure_vs_lr``) for rounds 0..k as an image at step k.

tensorboardX and the figures are imported inside the functions.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.tbnames import SWEEP_RUN, Searched, hparams_of, tag_of


# --- HParams (tensorboardX protos: no TensorFlow needed) ---------------------------------------------
def _hparams_summary(tag: str, **plugin_data):
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    content = HParamsPluginData(version=0, **plugin_data).SerializeToString()
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams", content=content))
    return Summary(value=[Summary.Value(tag=tag, metadata=meta)])


def session_start_summary(config: dict[str, Any], start_time: float | None = None, keys: tuple[str, ...] | None = None):
    from tensorboardX.proto.plugin_hparams_pb2 import SessionStartInfo

    info = SessionStartInfo(start_time_secs=start_time or time.time())
    for key, value in hparams_of(config, keys).items():
        if isinstance(value, bool):
            info.hparams[key].bool_value = value
        elif isinstance(value, float):
            info.hparams[key].number_value = value
        else:
            info.hparams[key].string_value = value
    return _hparams_summary("_hparams_/session_start_info", session_start_info=info)


def session_end_summary(failed: bool, end_time: float | None = None):
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import SessionEndInfo

    status = Status.Value("STATUS_FAILURE" if failed else "STATUS_SUCCESS")
    info = SessionEndInfo(status=status, end_time_secs=end_time or time.time())
    return _hparams_summary("_hparams_/session_end_info", session_end_info=info)


def hparams_experiment(searched: Searched, metric: str = "val_loss"):
    """The HParams experiment: the columns ``Searched.keys`` (``round`` 0..max_rounds-1, the zoomed
    parameter over its range, each crossed dimension with its values) and the metrics (the sweep's metric,
    ``train_loss``, ``val_error``: each at a trial's last epoch), nothing else."""
    from tensorboardX.proto.api_pb2 import DataType, Experiment, HParamInfo, Interval, MetricInfo, MetricName

    infos = [
        HParamInfo(
            name="round",
            type=DataType.Value("DATA_TYPE_FLOAT64"),
            description="the zoom round that created the trial",
            domain_interval=Interval(min_value=0, max_value=max(searched.max_rounds - 1, 0)),
        )
    ]
    span = Interval(min_value=searched.low, max_value=searched.high) if math.isfinite(searched.low) else None
    infos.append(
        HParamInfo(
            name=searched.param,
            type=DataType.Value("DATA_TYPE_FLOAT64"),
            description="the zoomed parameter",
            domain_interval=span,
        )
    )
    for key, values in searched.grid:
        shown = list(hparams_of({key: v}, (key,)).get(key) for v in values)
        kind = (
            "DATA_TYPE_BOOL"
            if all(isinstance(v, bool) for v in shown)
            else "DATA_TYPE_FLOAT64"
            if all(isinstance(v, float) for v in shown)
            else "DATA_TYPE_STRING"
        )
        info = HParamInfo(name=key, type=DataType.Value(kind), description="a crossed dimension of the space")
        info.domain_discrete.extend([v if kind != "DATA_TYPE_STRING" else str(v) for v in shown])
        infos.append(info)
    names = [metric] + [m for m in ("train_loss", "val_error") if m != metric]
    metrics = [MetricInfo(name=MetricName(tag=tag_of(m, metric)), display_name=f"{m} (last epoch)") for m in names]
    experiment = Experiment(hparam_infos=infos, metric_infos=metrics, time_created_secs=time.time())
    return _hparams_summary("_hparams_/experiment", experiment=experiment)


# --- the pick, after the report ----------------------------------------------------------------------
def write_pick(summary) -> Path:
    """Add the chosen rate to ``FOLDER/_sweep`` (see the module doc) from an ``analysis.Summary`` and the
    ``best.json`` the report wrote beside it (``pick_of``: the numbers are best.json's). Returns the run."""
    from tensorboardX import SummaryWriter

    from orchestrator import plots, results

    s = summary
    pick = pick_of(results.read_json(s.folder / "best.json") or {}, s.metric)
    step = int(s.epochs)
    run = s.folder / SWEEP_RUN
    with SummaryWriter(str(run), flush_secs=10) as w:
        w.add_scalar("chosen/lr", pick.get("lr", s.lr), step)
        for key in ("low", "high"):
            if key in pick:
                w.add_scalar(f"chosen/lr_{key}", pick[key], step)
        if "score" in pick:
            w.add_scalar(f"chosen/{s.metric}", pick["score"], step)
        add_text(w, "chosen/summary", pick_markdown(pick, s.metric, getattr(s, "param", "lr")), step)
        for k in sorted({c.round for c in s.table}):
            upto = replace(
                s,
                table=tuple(c for c in s.table if c.round <= k),
                rounds=[r for r in s.rounds if int(r.get("index", 0)) <= k],
            )
            fig = plots.figure_vs_lr(upto)
            fig.axes[0].set_title(f"{s.folder.name}: {s.metric} against learning rate, rounds 0-{k}")
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
            w.file_writer.add_summary(_image_summary(f"chosen/{s.metric}_vs_lr", buf.getvalue(), fig), k)
    return run


def pick_of(best: dict[str, Any], metric: str = "val_loss") -> dict[str, Any]:
    """What TensorBoard shows of best.json, each key only where best.json has it (finite): ``lr``;
    ``low``, ``high``, ``noise`` (``band``); ``score`` (the chosen rate's own score: ``score.value``; a
    best.json without ``score`` gives ``METRIC`` only when the rate is not a fit between trials, since there
    ``METRIC`` is the best trial's) and ``label`` (what the score is, e.g. 'mean of epochs 25-27');
    ``interpolated``; ``best_trial``, ``best_lr``, ``best_score``, ``best_label``; ``epochs``, ``fte``,
    ``trials``; ``warnings``."""
    out: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)

    put("lr", best.get("lr"))
    band: dict[str, Any] = best["band"] if isinstance(best.get("band"), dict) else {}
    for key in ("low", "high", "noise"):
        put(key, band.get(key))
    score = best.get("score") if isinstance(best.get("score"), dict) else None
    if score is not None:
        put("score", score.get("value"))
        label = "; ".join(str(x) for x in dict.fromkeys((score.get("statistic"), score.get("label"))) if x)
    else:
        if not best.get("interpolated"):
            put("score", best.get(metric))
        label = None
    if label and "score" in out:
        out["label"] = str(label)
    out["interpolated"] = bool(best.get("interpolated"))
    bt: dict[str, Any] = best["best_trial"] if isinstance(best.get("best_trial"), dict) else {}
    if bt.get("trial_id"):
        out["best_trial"] = str(bt["trial_id"])
        put("best_lr", bt.get("lr"))
        put("best_score", bt.get("score", bt.get(metric)))
        if bt.get("statistic"):
            out["best_label"] = str(bt["statistic"])
    put("epochs", best.get("epochs_spent"))
    put("fte", best.get("fte"))
    put("trials", best.get("trials"))
    out["warnings"] = [str(w) for w in best.get("warnings") or []]
    return out


def pick_markdown(pick: dict[str, Any], metric: str = "val_loss", param: str = "lr") -> str:
    """The Text summary of the pick (``pick_of``): the chosen rate with its band, its own score, the best
    trial run, the cost, the warnings; a missing number is left out."""
    lines = [f"**chosen {param} = {pick['lr']:.3g}**" if "lr" in pick else f"**no {param} chosen**"]
    if pick.get("interpolated"):
        lines[0] += " (a fit between trials: no trial ran at it)"
    lines.append("")
    if "low" in pick and "high" in pick:
        lines.append(
            f"- band: {param} {pick['low']:.3g} .. {pick['high']:.3g}, the rates the sweep cannot tell "
            f"apart from the best" + (f" (noise {pick['noise']:.4f})" if "noise" in pick else "")
        )
    if "score" in pick:
        lines.append(
            f"- {metric} of the chosen rate: {pick['score']:.4f}" + (f" ({pick['label']})" if pick.get("label") else "")
        )
    if "best_trial" in pick:
        rate = f" at {param} {pick['best_lr']:.3g}" if "best_lr" in pick else ""
        score = f": {metric} {pick['best_score']:.4f}" if "best_score" in pick else ""
        label = f" ({pick['best_label']})" if pick.get("best_label") and score else ""
        lines.append(f"- best trial run: {pick['best_trial']}{rate}{score}{label}")
    if "epochs" in pick:
        lines.append(
            f"- cost: {pick['epochs']:.0f} epochs"
            + (f" ({pick['fte']:.1f} FTE)" if "fte" in pick else "")
            + (f", {pick['trials']:.0f} trials" if "trials" in pick else "")
        )
    lines += [f"- warning: {w}" for w in pick.get("warnings", [])]
    return "\n".join(lines)


def add_text(writer, tag: str, markdown: str, step: int) -> None:
    """A Text-tab entry under ``tag`` itself (tensorboardX's ``add_text`` appends ``/text_summary``)."""
    from tensorboardX.summary import text

    summary = text(tag, markdown)
    summary.value[0].tag = tag
    writer.file_writer.add_summary(summary, step)


def _image_summary(tag: str, png: bytes, fig):
    from tensorboardX.proto.summary_pb2 import Summary

    width, height = (int(v) for v in fig.get_size_inches() * 100)
    image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
    return Summary(value=[Summary.Value(tag=tag, image=image)])
