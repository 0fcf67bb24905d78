"""Write an evaluation report: ``metrics.json``, ``summary.md`` and PNG plots, for a model next to its baselines."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.evaluation.metrics import coefficient_matrix, json_float
from semanticface.evaluation.results import SystemResult
from semanticface.extras import require
from semanticface.schema import BLENDSHAPES

# Figures shown in the summary table, in order: (key in SystemResult.to_dict(), column title).
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("mae", "MAE"),
    ("rmse", "RMSE"),
    ("upper_mae", "upper MAE"),
    ("lower_mae", "lower MAE"),
    ("mean_pearson", "mean Pearson"),
    ("spread_ratio", "spread/truth"),
    ("mae_own_mask", "MAE own cells"),
    ("coverage", "coverage"),
    ("parse_failure_rate", "parse failures"),
    ("description_consistency", "description consistency"),
    ("category_accuracy", "expression category accuracy"),
    ("action_precision", "action precision"),
    ("action_recall", "action recall"),
    ("render_distance", "render distance"),
    ("mean_output_tokens", "tokens/pred"),
    ("seconds_per_image", "s/image"),
)

RenderFunction = Callable[[FaceCoefficients], Any]  # returns a PIL image


def write_report(
    out_dir: str | Path,
    results: Sequence[SystemResult],
    truths: Sequence[FaceCoefficients],
    *,
    images: Sequence[Any] | None = None,
    render: RenderFunction | None = None,
    num_renders: int = 4,
    meta: dict[str, Any] | None = None,
    comparisons: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write the report files into ``out_dir`` and return their paths by kind.

    ``results[0]`` is the system under test (the model); the others are drawn next to it. ``render`` (coefficients
    -> PIL image) enables the side-by-side avatar renders of prediction and truth. ``comparisons``: paired
    bootstrap intervals of ``results[0]`` against each other system (:func:`scoring.compare_with_baselines`).
    Every system's warnings are listed at the top of ``summary.md`` and under ``warnings`` in ``metrics.json``.
    """
    matplotlib = require("matplotlib", "the evaluation report's plots")
    matplotlib.use("Agg")  # files only: never needs a display
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    payload = {
        "meta": meta or {},
        "warnings": [w for r in results for w in r.warnings],
        "systems": {r.name: r.to_dict() for r in results},
        "comparisons": {
            f"{results[0].name} vs {name}": {k: _json_value(v) for k, v in c.items()}
            for name, c in (comparisons or {}).items()
        },
    }
    paths["metrics"] = out / "metrics.json"
    paths["metrics"].write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    paths["mae_per_blendshape"] = _plot_channel_mae(results, out / "mae_per_blendshape.png")
    paths["mae_per_region"] = _plot_region_mae(results, out / "mae_per_region.png")
    paths["scatter"] = _plot_scatter(results, truths, out / "pred_vs_truth.png")
    if render is not None:
        paths["renders"] = _plot_renders(results, truths, images, render, out / "renders.png", num_renders)
    paths["summary"] = out / "summary.md"
    paths["summary"].write_text(_markdown(results, paths, meta or {}, comparisons or {}))
    return paths


def _json_value(value: Any) -> Any:
    return json_float(value) if isinstance(value, float) else value


def summary_row(result: SystemResult) -> dict[str, float | None]:
    """The headline figures of one system (None where not measured)."""
    data = result.to_dict()
    row: dict[str, float | None] = {
        "mae": data["overall"]["mae"],
        "rmse": data["overall"]["rmse"],
        "upper_mae": data["halves"]["upper"]["mae"],
        "lower_mae": data["halves"]["lower"]["mae"],
        "mae_own_mask": data["own_mask"]["mae"],
    }
    for key, _ in SUMMARY_COLUMNS:
        row.setdefault(key, data.get(key))
    return row


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.4f}"  # token counts need no 4 decimals


def _ratio(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _markdown(
    results: Sequence[SystemResult],
    paths: dict[str, Path],
    meta: dict[str, Any],
    comparisons: dict[str, dict[str, Any]],
) -> str:
    lines = ["# Evaluation report", ""]
    warnings = [w for r in results for w in r.warnings]
    for warning in warnings:
        lines.append(f"> **Warning:** {warning}.")
    if warnings:
        lines.append("")
    for key, value in meta.items():
        lines.append(f"- **{key}**: {value}")
    lines += [
        "",
        "## Summary",
        "",
        "MAE/RMSE over the 52 blendshapes, every system on the same rows and cells: a cell a system did not give "
        "(parse failure, omitted or unreadable channel) is scored as the train split's per-channel median, so "
        "dropping a channel never scores better than the median baseline. *MAE own cells* scores only the cells "
        "the system gave; *coverage* is their share. *spread/truth* is the mean per-channel standard deviation of "
        "the predictions across images relative to the truth's (near 0: the system ignores the image).",
        "",
    ]
    lines.append("| system | " + " | ".join(title for _, title in SUMMARY_COLUMNS) + " |")
    lines.append("|---" * (len(SUMMARY_COLUMNS) + 1) + "|")
    for result in results:
        row = summary_row(result)
        lines.append(f"| {result.name} | " + " | ".join(_fmt(row[key]) for key, _ in SUMMARY_COLUMNS) + " |")
    main = results[0]
    if comparisons:
        first = next(iter(comparisons.values()))
        lines += [
            "",
            f"## {main.name} against each baseline",
            "",
            f"Paired bootstrap over the {first['n']} test images ({first['n_boot']:,} resamples, "
            f"{first['confidence']:.0%} intervals): difference of mean per-image MAE ({main.name} − baseline; "
            "negative is better) and the ratio of the means.",
            "",
            "| baseline | Δ MAE | interval | ratio | interval | interval excludes 0 |",
            "|---|---|---|---|---|---|",
        ]
        for name, c in comparisons.items():
            lines.append(
                f"| {name} | {c['mean_diff']:+.4f} | [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | "
                f"{_ratio(c['ratio'])} | [{_ratio(c['ratio_ci_low'])}, {_ratio(c['ratio_ci_high'])}] | "
                f"{'yes' if c['excludes_zero'] else 'no'} |"
            )
    regions = list(main.metrics.regions)
    lines += [
        "",
        "## MAE per region",
        "",
        "| system | " + " | ".join(regions) + " |",
        "|---" * (len(regions) + 1) + "|",
    ]
    for result in results:
        cells = [_fmt(result.metrics.regions[r].mae) if r in result.metrics.regions else "–" for r in regions]
        lines.append(f"| {result.name} | " + " | ".join(cells) + " |")
    worst = sorted(
        ((n, s.mae) for n, s in main.metrics.channels.items() if s.count and n in BLENDSHAPES), key=lambda x: -x[1]
    )[:10]
    lines += ["", f"## Hardest blendshapes for {main.name}", "", "| channel | MAE | Pearson |", "|---|---|---|"]
    lines += [f"| {n} | {_fmt(v)} | {_fmt(main.metrics.pearson.get(n))} |" for n, v in worst]
    lines += _channel_table(results)
    lines += ["", "## Plots", ""]
    for kind in ("mae_per_blendshape", "mae_per_region", "scatter", "renders"):
        if kind in paths:
            lines.append(f"![{kind}]({paths[kind].name})")
    return "\n".join(lines) + "\n"


def _channel_table(results: Sequence[SystemResult]) -> list[str]:
    """MAE of every system and Pearson of the system under test, per blendshape."""
    main = results[0]
    names = [r.name for r in results]
    lines = [
        "",
        "## Per blendshape",
        "",
        f"MAE per system; Pearson correlation of {main.name}'s predictions with the truth across images "
        "(– where undefined: a channel constant in the truth or in the predictions).",
        "",
        "| channel | " + " | ".join(f"MAE {n}" for n in names) + f" | Pearson {main.name} |",
        "|---" * (len(names) + 2) + "|",
    ]
    for channel in BLENDSHAPES:
        cells = [_fmt(r.metrics.channels[channel].mae) if channel in r.metrics.channels else "–" for r in results]
        lines.append(f"| {channel} | " + " | ".join(cells) + f" | {_fmt(main.metrics.pearson.get(channel))} |")
    return lines


def _plot_channel_mae(results: Sequence[SystemResult], path: Path) -> Path:
    plt = require("matplotlib.pyplot", "the evaluation report's plots")

    fig, ax = plt.subplots(figsize=(9, 13))
    y = np.arange(len(BLENDSHAPES))
    height = 0.8 / len(results)
    for i, result in enumerate(results):
        mae = [result.metrics.channels[n].mae if n in result.metrics.channels else np.nan for n in BLENDSHAPES]
        ax.barh(y + i * height, np.nan_to_num(mae), height=height, label=result.name)
    ax.set_yticks(y + height * (len(results) - 1) / 2, BLENDSHAPES, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("mean absolute error")
    ax.set_title("MAE per blendshape")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_region_mae(results: Sequence[SystemResult], path: Path) -> Path:
    plt = require("matplotlib.pyplot", "the evaluation report's plots")

    regions = list(results[0].metrics.regions) + ["upper", "lower"]
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(regions))
    width = 0.8 / len(results)
    for i, result in enumerate(results):
        stats = {**result.metrics.regions, **result.metrics.halves}
        ax.bar(
            x + i * width,
            [np.nan_to_num(stats[r].mae) if r in stats else 0 for r in regions],
            width,
            label=result.name,
        )
    ax.set_xticks(x + width * (len(results) - 1) / 2, regions)
    ax.set_ylabel("mean absolute error")
    ax.set_title("MAE per region and face half")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_scatter(results: Sequence[SystemResult], truths: Sequence[FaceCoefficients], path: Path) -> Path:
    plt = require("matplotlib.pyplot", "the evaluation report's plots")

    truth = coefficient_matrix(truths)[:, : len(BLENDSHAPES)]
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4), squeeze=False)
    for ax, result in zip(axes[0], results):
        pred = coefficient_matrix(result.predictions)[:, : len(BLENDSHAPES)]
        ok = np.isfinite(pred) & np.isfinite(truth)
        # Colour by channel so a channel stuck at one value shows as a horizontal line of one colour.
        colour = np.broadcast_to(np.arange(len(BLENDSHAPES)), truth.shape)[ok]
        ax.scatter(truth[ok], pred[ok], s=4, c=colour, cmap="tab20", alpha=0.6)
        ax.plot([0, 1], [0, 1], color="black", linewidth=0.8)
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="truth", ylabel="prediction", title=result.name)
        ax.set_aspect("equal")
    fig.suptitle("Predicted vs true blendshape values")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_renders(
    results: Sequence[SystemResult],
    truths: Sequence[FaceCoefficients],
    images: Sequence[Any] | None,
    render: RenderFunction,
    path: Path,
    count: int,
) -> Path:
    plt = require("matplotlib.pyplot", "the evaluation report's plots")

    indices = list(range(min(count, len(truths))))
    columns = (["input"] if images is not None else []) + ["truth"] + [r.name for r in results]
    fig, axes = plt.subplots(
        len(indices), len(columns), figsize=(2.2 * len(columns), 2.4 * len(indices)), squeeze=False
    )
    for row, index in enumerate(indices):
        panels: list[Any] = [images[index]] if images is not None else []
        panels.append(render(truths[index]))
        for result in results:
            prediction = result.predictions[index]
            panels.append(None if prediction is None else render(prediction))
        for col, (ax, panel) in enumerate(zip(axes[row], panels)):
            ax.axis("off")
            if panel is None:
                ax.text(0.5, 0.5, "parse\nfailure", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.imshow(np.asarray(panel))
            if row == 0:
                ax.set_title(columns[col], fontsize=9)
    fig.suptitle("Avatar renders: prediction vs truth")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
