"""Draw the Grafana dashboard (deploy/grafana/zeus-dashboard.json) from real data, with matplotlib.

Runs what the dashboard test runs (tests/observability/stack.py: a node agent on a replay GPU, the
batch size optimizer server, a Pushgateway and Debian's Prometheus on loopback, recurrences of a job
training softmax regression on scikit-learn's digits), then asks Prometheus each panel's queries and
draws them where the dashboard places them.

    .venv/bin/python scripts/render_dashboard.py [--recurrences 5] [--out docs/img/dashboard.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.observability.stack import INTERVAL_S, JOB_ID, stack  # noqa: E402

UNITS = {"watt": "W", "joule": "J", "percent": "%", "none": ""}


def substitute(expr: str, range_s: int) -> str:
    return (
        expr.replace("$__range", f"{range_s}s")
        .replace("$instance", ".*")
        .replace("$job_id", JOB_ID)
    )


def legend(fmt: str, labels: dict[str, str]) -> str:
    fmt = fmt.replace("{{instance}} ", "")  # one node here
    for key, value in labels.items():
        fmt = fmt.replace("{{" + key + "}}", value)
    return fmt


def draw(board: dict[str, Any], prometheus: Any, start: float, end: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    fig = plt.figure(figsize=(16, rows * 0.34))
    fig.suptitle(
        f"{board['title']}: {JOB_ID}, recurrences on a replay GPU (figures replayed from an A40 "
        "profile), Prometheus scraping every second",
        fontsize=11,
    )
    range_s = int(end - start) + 5
    for panel in board["panels"]:
        g = panel["gridPos"]
        left = 0.08 if panel["type"] == "bargauge" else 0.035  # room for the bars' names
        ax = fig.add_axes(
            (
                g["x"] / 24 + left,
                1 - (g["y"] + g["h"]) / rows + 0.03,
                g["w"] / 24 - left - 0.015,
                g["h"] / rows - 0.075,
            )
        )
        unit = UNITS.get(panel["fieldConfig"]["defaults"].get("unit", "none"), "")
        shown_unit = f" ({unit})" if unit and not panel["title"].endswith(f"({unit})") else ""
        ax.set_title(panel["title"] + shown_unit, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        if panel["type"] == "timeseries":
            for target in panel["targets"]:
                expr = substitute(target["expr"], range_s)
                for series in prometheus.query_range(expr, start, end, 0.5):
                    t = [float(p[0]) - start for p in series["values"]]
                    v = [float(p[1]) for p in series["values"]]
                    ax.step(
                        t, v, where="post", label=legend(target["legendFormat"], series["metric"])
                    )
            ax.set_xlabel("seconds since Prometheus started", fontsize=7)
            ax.legend(fontsize=6, loc="best")
            continue
        values = [
            (legend(target["legendFormat"], s["metric"]), float(s["value"][1]))
            for target in panel["targets"]
            for s in prometheus.query(substitute(target["expr"], range_s))
        ]
        ax.set_xticks([])
        ax.set_yticks([])
        if panel["type"] == "stat":
            text = "\n".join(f"{name}: {value:,.1f} {unit}" for name, value in values)
            ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, color="tab:green")
            continue
        names = [name for name, _ in values]
        ax.barh(range(len(values)), [v for _, v in values], color="tab:blue")
        ax.set_yticks(range(len(values)), names, fontsize=7)
        for i, (_, value) in enumerate(values):
            ax.text(0, i, f" {value:,.1f}", va="center", fontsize=8, color="white")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recurrences", type=int, default=6)
    parser.add_argument("--out", type=Path, default=REPO / "docs/img/dashboard.png")
    args = parser.parse_args()
    board = json.loads((REPO / "deploy/grafana/zeus-dashboard.json").read_text())
    with tempfile.TemporaryDirectory(prefix="zeus-", dir="/tmp") as tmp, stack(Path(tmp)) as run:
        for _ in range(args.recurrences):
            result = run.run_recurrence()
            print(json.dumps(result))
        time.sleep(2.5 * INTERVAL_S)
        draw(board, run.prometheus, run.started_at, time.time(), args.out)


if __name__ == "__main__":
    main()
