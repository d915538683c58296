"""The CLI as a whole: help texts, --version, old option names, lists and case, one-line errors."""

from __future__ import annotations

import gzip
import os
import re
import socket
import subprocess
import sys
from importlib.metadata import packages_distributions, version
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from zeus.cli import app
from zeus.errors import ZeusError
from zeus.extras import EXTRAS, extra_for_module

ROOT = Path(__file__).resolve().parents[2]
ZEUS = str(Path(sys.executable).parent / "zeus")
runner = CliRunner(env={"COLUMNS": "200"})


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


COMMANDS = _commands(typer.main.get_group(app))


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "zeus")
def test_help_shows_no_type_noise_and_explains_every_option(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert "{" not in usage and "<bool>" not in result.output
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"zeus {' '.join(path)} {param.opts[0]} has no help text"


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"zeus {version('zeus-energy')}"


def _run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("ZEUS_GPU", None)
    return subprocess.run(
        [ZEUS, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300
    )


def test_show_env_and_monitor_print_their_output_first() -> None:
    for args in (["show-env"], ["monitor", "energy", "--duration", "0"]):
        proc = _run(*args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", f"zeus {' '.join(args)} logged before its output: {proc.stderr}"
    verbose = _run("-v", "monitor", "energy", "--duration", "0")
    assert "INFO zeus.device: no GPU found" in verbose.stderr


def test_simulator_names_are_case_insensitive_and_old_names_still_work() -> None:
    new = [
        "simulate",
        "single",
        "--dataset",
        "SQuAD",
        "--power-trace",
        "V100",
        "--recurrences",
        "9",
    ]
    old = ["simulate", "single", "--dataset", "squad", "--gpu", "v100", "--num-recurrence", "9"]
    a, b = runner.invoke(app, new), runner.invoke(app, old)
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert a.output == b.output and "squad+bert_base_uncased+adamw on v100" in a.output
    both = runner.invoke(app, [*new, "--gpu", "a40"])
    assert "--gpu is the old name of --power-trace: give one of them" in str(both.exception)
    sweep = runner.invoke(
        app, ["simulate", "sweep", "--dataset", "SQUAD", "--power-trace", "P100,v100",
              "--seeds", "1", "--processes", "1"],
    )  # fmt: skip
    assert sweep.exit_code == 0, sweep.output
    assert re.search(r"squad\s+│ p100", sweep.output) and re.search(r"squad\s+│ v100", sweep.output)


def test_sweep_and_cluster_plot(tmp_path: Path) -> None:
    sweep = runner.invoke(
        app, ["simulate", "sweep", "--dataset", "squad", "--power-trace", "v100,a40",
              "--seeds", "2", "--processes", "1", "--plot", str(tmp_path / "s")],
    )  # fmt: skip
    assert sweep.exit_code == 0, sweep.output
    cluster = runner.invoke(
        app, ["simulate", "cluster", "--dataset", "squad", "--num-groups", "2",
              "--plot", str(tmp_path / "c")],
    )  # fmt: skip
    assert cluster.exit_code == 0, cluster.output
    for name in ("s-sweep.png", "c-cluster.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_monitor_energy_takes_a_comma_list_of_gpu_indices() -> None:
    gpus = "replay:a40-resnet50-x4:4:wall"
    for indices in (["--gpu-index", "1,3"], ["--gpu-index", "1", "--gpu-index", "3"]):
        result = runner.invoke(
            app, ["monitor", "energy", "--gpu", gpus, *indices, "--duration", "0"]
        )
        assert result.exit_code == 0, result.output
        assert "GPU 1" in result.output and "GPU 3" in result.output
        assert "GPU 0" not in result.output and "GPU 2" not in result.output
    bad = runner.invoke(app, ["monitor", "energy", "--gpu", gpus, "--gpu-index", "0,x"])
    assert "--gpu-index takes whole numbers" in str(bad.exception)


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,  # an image
        bytes((i * 7919) % 251 for i in range(3000)),  # random-looking bytes
        b"\x00\x01timestamp_s,gpu,power_w\n",  # NUL bytes
    ],
    ids=["png", "random", "nul"],
)
def test_analyze_refuses_what_is_not_a_power_log_in_one_line(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "power.csv"
    path.write_bytes(content)
    proc = _run("analyze", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: power log {path} is not a CSV text file (timestamp_s,gpu,power_w; .csv.gz works too)"
    ]


def test_analyze_reads_gzip_and_counts_the_samples_of_its_window(tmp_path: Path) -> None:
    rows = "".join(f"{t},{g},{100 + 10 * g}\n" for t in range(11) for g in (0, 1))
    path = tmp_path / "power.csv.gz"
    path.write_bytes(gzip.compress(f"timestamp_s,gpu,power_w\n{rows}".encode()))
    whole = runner.invoke(app, ["analyze", str(path)])
    window = runner.invoke(app, ["analyze", str(path), "--start", "2", "--end", "5"])
    assert whole.exit_code == 0 and window.exit_code == 0, whole.output + window.output
    assert re.search(r"│ 0\s+│\s+11 │\s+1000\.000 │", whole.output)
    assert re.search(r"│ 0\s+│\s+4 │\s+300\.000 │", window.output)  # samples at 2, 3, 4, 5 s
    assert re.search(r"│ all\s+│\s+8 │\s+630\.000 │", window.output)


def _normal(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_extras_match_the_package_metadata() -> None:
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    dists = packages_distributions()
    for extra, modules in EXTRAS.items():
        declared = {_normal(re.split(r"[\[<>=!~ ]", d)[0]) for d in extras[extra]}
        for module in modules:
            provided = {_normal(d) for d in dists.get(module, [])}
            assert provided & declared, f"{module} is not installed by the '{extra}' extra"
    assert extra_for_module("torch.nn") == "torch" and extra_for_module("numpy") is None


HIDE_FASTAPI = """
import sys


class HideFastAPI:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "fastapi":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, HideFastAPI())
"""


def test_missing_extra_is_named_in_one_line(tmp_path: Path) -> None:
    """zeus serve in a Python where FastAPI cannot be imported (a sitecustomize hides it)."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(HIDE_FASTAPI)
    env = {"PYTHONPATH": str(tmp_path / "site")}
    proc = _run("serve", "--port", "1", env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: zeus serve needs the 'server' extra (fastapi is not installed): "
        "pip install -e '.[server]' in your Zeus clone"
    ]
    assert list(tmp_path.glob("*.db")) == []  # refused before touching a database


def test_serve_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run(
            "serve",
            "--port",
            str(port),
            env={"ZEUS_BSO_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"},
        )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: port: cannot listen on 127.0.0.1:{port} (Address already in use); "
        "pick another with --port or ZEUS_BSO_PORT"
    ]
    assert not (tmp_path / "b.db").exists()


def test_demo_checks_its_server_before_the_first_run(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    result = runner.invoke(app, ["demo", "--server", url, "--out", str(tmp_path / "demo")])
    assert isinstance(result.exception, ZeusError)
    assert str(result.exception).startswith(f"--server {url}: no BSO server answers at /health")
    assert not (tmp_path / "demo").exists()
