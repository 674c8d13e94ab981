"""Warm start against a cold sweep on digits, when the batch size changed: the same pick for less cost?

    .venv/bin/python -m bench.warm_start [--seeds 3] [--results DIR]   # writes DIR/warm_start_digits.md

One embedded Ray session (2 CPUs). A: the old sweep (batch 32, 6 epochs). Then the new settings (batch 64,
8 epochs): B cold over the full range; C warm from A with ``scaling: linear``; D warm from A with
``scaling: sqrt``; all four once per base seed (``--seeds``). Each: its pick, its epochs (cost), its trials,
and how far its pick lies from the same seed's B (decades); then the means over seeds.
The digits landscape is flat near its optimum, so picks within ~0.3 decades are the same within seed noise.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from bench.common import add_results_option

SPACE = {"lr": {"log": [1e-4, 1e-0], "per_decade": 2}, "optimizer": "sgd", "momentum": 0.9, "width": 32}


def spec(name: str, storage: str, batch: int, epochs: int, warm: dict | None = None, seed: int = 0) -> dict:
    out = {
        "name": name,
        "workload": "digits_mlp",
        "max_epochs": epochs,
        "storage": storage,
        "seed": seed,
        "space": {**SPACE, "batch_size": batch},
        "zoom": {"max_rounds": 2},
    }
    return {**out, "warm_start": warm} if warm else out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    add_results_option(p)
    args = p.parse_args(argv)
    out = Path(args.results) / "warm_start_digits.md"

    from cluster.connect import ray_session
    from orchestrator import config, tuning

    storage = tempfile.mkdtemp(prefix="warm-bench-")
    rows = []
    labels = (
        "A old (batch 32, 6 epochs), cold",
        "B new (batch 64, 8 epochs), cold",
        "C new, warm from A, linear",
        "D new, warm from A, sqrt",
    )
    with ray_session(None, num_cpus=2):

        def run(label: str, seed: int, cold_lr: float | None, data: dict):
            start = time.time()
            s = tuning.run(config.parse(data), tuning.RunOptions(quiet=True))
            moved = abs(math.log10(s.lr) - math.log10(cold_lr if cold_lr is not None else s.lr))
            rows.append((label, seed, s.lr, moved, s.epochs, len(s.table), time.time() - start))
            print(f"{label} seed {seed}: lr={s.lr:.4g} epochs={s.epochs} ({time.time() - start:.0f} s)", flush=True)
            return s

        for seed in range(args.seeds):
            old = run(labels[0], seed, None, spec(f"old-{seed}", storage, 32, 6, seed=seed))
            cold = run(labels[1], seed, None, spec(f"cold-{seed}", storage, 64, 8, seed=seed))
            rows[-2] = (*rows[-2][:3], abs(math.log10(old.lr) - math.log10(cold.lr)), *rows[-2][4:])
            run(labels[2], seed, cold.lr, spec(f"warm-linear-{seed}", storage, 64, 8, {"run": str(old.folder)}, seed))
            run(
                labels[3],
                seed,
                cold.lr,
                spec(f"warm-sqrt-{seed}", storage, 64, 8, {"run": str(old.folder), "scaling": "sqrt"}, seed),
            )

    lines = [
        "# Warm start against a cold sweep on digits (batch 32 -> 64, 6 -> 8 epochs)",
        "",
        "`python -m bench.warm_start`: one embedded Ray (2 CPUs), digits_mlp (sgd, momentum 0.9, width 32), "
        "lr 1e-4..1 at 2 per decade, 2 zoom rounds, ASHA on. A warm start narrows round 0 to 1 decade either "
        "side of A's pick moved by the rule.",
        "",
        "| sweep | seed | pick lr | decades from B's pick (same seed) | epochs (cost) | trials | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, seed, lr, moved, epochs, trials, wall in rows:
        lines.append(f"| {label} | {seed} | {lr:.4g} | {moved:.2f} | {epochs} | {trials} | {wall:.0f} |")
    lines += [
        "",
        "Means over seeds:",
        "",
        "| sweep | mean decades from B's pick | mean epochs (cost) |",
        "|---|---|---|",
    ]
    for label in labels:
        mine = [r for r in rows if r[0] == label]
        lines.append(
            f"| {label} | {sum(r[3] for r in mine) / len(mine):.2f} | {sum(r[4] for r in mine) / len(mine):.1f} |"
        )
    lines += [
        "",
        "A's row: how far the OLD settings' pick lies from B's (what a warm start must move). Each sweep "
        "trains one seed per point, so a pick moves by ~0.1-0.3 decades between seeds of the same sweep: "
        "read distances under that as the same pick.",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
