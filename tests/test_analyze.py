"""zeus.analyze: trapezoid integration of power logs, windows, malformed logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from zeus.analyze import avg_power, energy, energy_by_gpu, read_power_log
from zeus.errors import ZeusConfigError

# GPU 0 ramps 100 -> 200 W over 10 s; GPU 1 holds 50 W.
ROWS = [(1000.0 + t, 0, 100.0 + 10.0 * t) for t in range(11)] + [
    (1000.0 + t, 1, 50.0) for t in range(0, 11, 2)
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_trapezoid_over_whole_log() -> None:
    assert energy(ROWS, gpu=0) == pytest.approx(1500.0)  # mean 150 W x 10 s
    assert energy(ROWS, gpu=1) == pytest.approx(500.0)
    assert energy(ROWS) == pytest.approx(2000.0)
    assert avg_power(ROWS) == pytest.approx(200.0)


def test_window_edges_are_interpolated() -> None:
    # 2.5 s .. 7.5 s of the ramp: 125 -> 175 W, mean 150 W x 5 s.
    assert energy(ROWS, start=2.5, end=7.5, gpu=0) == pytest.approx(750.0)
    assert avg_power(ROWS, start=2.5, end=7.5, gpu=0) == pytest.approx(150.0)


def test_negative_offsets_count_from_the_end() -> None:
    # Last 4 s of the ramp: 160 -> 200 W.
    assert energy(ROWS, start=-4, gpu=0) == pytest.approx(720.0)
    assert energy(ROWS, start=0, end=-6, gpu=0) == pytest.approx(energy(ROWS, end=4, gpu=0))


def test_csv_path_and_dict_rows(tmp_path: Path) -> None:
    lines = ["timestamp_s,gpu,power_w"] + [f"{t},{g},{w}" for t, g, w in ROWS]
    path = _write(tmp_path / "log.csv", lines)
    assert energy(path) == pytest.approx(2000.0)
    assert energy(str(path), start=1) == pytest.approx(energy(ROWS, start=1))
    dicts = [{"timestamp_s": t, "gpu": g, "power_w": w} for t, g, w in ROWS]
    assert energy_by_gpu(dicts) == pytest.approx({0: 1500.0, 1: 500.0})


def test_unsorted_rows_are_sorted() -> None:
    assert energy(list(reversed(ROWS))) == pytest.approx(2000.0)


def test_too_few_samples() -> None:
    with pytest.raises(ZeusConfigError, match="1 sample of GPU 3; at least 2"):
        energy([(0.0, 3, 10.0)])
    with pytest.raises(ZeusConfigError, match="no samples"):
        energy([])


def test_bad_value_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", ["timestamp_s,gpu,power_w", "1,0,10", "2,0,lots"])
    with pytest.raises(ZeusConfigError, match=r"line 3, column power_w: 'lots' is not a number"):
        energy(path)


def test_bad_header_names_missing_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", ["time,gpu,watts", "1,0,10"])
    with pytest.raises(
        ZeusConfigError, match="line 1 header time,gpu,watts lacks timestamp_s, power_w"
    ):
        energy(path)


def test_negative_power_and_bad_gpu_rejected() -> None:
    with pytest.raises(ZeusConfigError, match=r"power_w: -5\.0 must be >= 0"):
        energy([(0, 0, -5.0), (1, 0, 5.0)])
    with pytest.raises(ZeusConfigError, match=r"column gpu: 1\.5 is not an index"):
        energy([(0, 1.5, 5.0), (1, 0, 5.0)])


def test_empty_window_says_how_offsets_work() -> None:
    with pytest.raises(ZeusConfigError, match="negative ones from its last"):
        energy(ROWS, start=5, end=5)
    with pytest.raises(ZeusConfigError, match="GPU 7 is not in the power log"):
        energy(ROWS, gpu=7)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ZeusConfigError, match="cannot read power log"):
        read_power_log(tmp_path / "nope.csv")
