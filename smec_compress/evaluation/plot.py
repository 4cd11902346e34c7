"""nDCG@10 against bytes per vector: one line per method, the full vectors as the ceiling.

Colour says which reducer produced the vectors, line style which codec stored them, so the
reducer families and the quantisers on top of them read apart in one figure. Agg backend: no
display needed.
"""

from __future__ import annotations

from pathlib import Path

from .compare import Row

_STYLE = {None: "-", "int8": "--", "binary": ":", "pq": "-.", "opq": (0, (5, 1, 1, 1))}
_MARKER = {None: "o", "int8": "s", "binary": "v", "pq": "D", "opq": "^"}


def _split(name: str) -> tuple[str, str | None]:
    """``"smec+opq"`` -> ("smec", "opq"); ``"opq"`` alone is a codec on the full vectors."""
    if "+" in name:
        reducer, codec = name.split("+", 1)
        return reducer, codec
    return ("full", name) if name in _STYLE else (name, None)


def _panel(ax, rows: list[Row], metric: str, colours: dict) -> None:
    """One panel: a line per method of ``metric`` (an attribute of Row) against bytes."""
    import matplotlib.ticker

    for name in dict.fromkeys(r.method for r in rows):
        points = sorted((r.bytes_per_vector, getattr(r, metric)) for r in rows if r.method == name)
        family, codec = _split(name)
        if name == "full":
            ax.axhline(points[0][1], color="black", lw=0.8, ls="--", label=f"full float32 ({points[0][0]} B)")
            continue
        label = name + (" (sup)" if any(r.supervised for r in rows if r.method == name) else "")
        xs, ys = zip(*points)
        ax.plot(xs, ys, ls=_STYLE.get(codec, "-"), marker=_MARKER.get(codec, "o"), ms=4, color=colours[family], label=label)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("bytes per vector (log scale)")
    ax.grid(True, which="both", alpha=0.3)


def plot_quality(rows: list[Row], path: Path, *, title: str = "") -> Path:
    """Write the PNG and return its path.

    With held-out scores a second panel shows them: on all queries a supervised head is
    flattered by label overlap, and the two panels side by side make that visible.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(_split(r.method)[0] for r in rows))
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    panels = [("ndcg10", "nDCG@10, all judged test queries")]
    if rows and all(r.ndcg10_heldout is not None for r in rows):
        panels.append(("ndcg10_heldout", "nDCG@10, held-out queries (no training positive)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels) + 3, 6.5), sharey=True, squeeze=False)
    for ax, (metric, label) in zip(axes[0], panels):
        _panel(ax, rows, metric, colours)
        ax.set_title(label, fontsize=10)
    axes[0][0].set_ylabel("nDCG@10")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
