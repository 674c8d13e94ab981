"""A picture and a table of the decay laws (for ``sweep schedules [--plot FILE.png]``); matplotlib is imported
lazily."""

from __future__ import annotations

from pathlib import Path

from schedules.laws import LAWS, Law, Warmup, law_params


def _default_laws() -> dict[str, Law]:
    laws: dict[str, Law] = {name: cls() for name, cls in LAWS.items()}
    laws["warmup + cosine"] = Warmup(law=LAWS["cosine"]())
    return laws


def plot_laws(path: str | Path, epochs: int = 100, laws: dict[str, Law] | None = None) -> Path:
    """Draw eta_t / eta_0 against epoch t for each law (default parameters unless ``laws`` is given) on a log
    y axis and save a PNG at ``path``. Plateau is drawn for a validation loss that never improves."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state touched

    laws = _default_laws() if laws is None else laws
    t = list(range(epochs))
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for label, law in laws.items():
        shown = f"{label} (loss never improves)" if law.name == "plateau" else label
        ax.plot(t, [law(i) for i in t], label=shown)  # zeros (cosine at t_max) drop off the log axis
    ax.set_yscale("log")
    ax.set_xlabel("epoch t")
    ax.set_ylabel("eta_t / eta_0")
    ax.set_title("Learning-rate decay laws (default parameters)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def describe_laws() -> str:
    """A text table: law, formula, parameter defaults, Robbins–Monro verdict and reason."""
    rows = []
    for name, cls in LAWS.items():
        holds, reason = cls().robbins_monro()
        params = ", ".join(f"{k}={v}" for k, v in law_params(name).items()) or "-"
        rows.append((name, cls.formula, params, "holds" if holds else "fails", reason))
    rows.append(
        (
            "warmup",
            Warmup.formula,
            f"warmup={Warmup().warmup} (wraps the chosen law; 0 = off)",
            "inherits",
            "finitely many terms change, so the wrapped law's verdict stands.",
        )
    )
    lines = []
    for name, formula, params, verdict, reason in rows:
        lines += [
            f"{name}",
            f"  formula:        {formula}",
            f"  defaults:       {params}",
            f"  Robbins-Monro:  {verdict}: {reason}",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"
