"""`zeus show-env`: what Zeus can see and do on this machine."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from zeus.cli.console import make_console

if TYPE_CHECKING:
    from zeus.device import GPU

GPU_OPTION_HELP = (
    "GPU backend: 'nvml', 'amd', 'replay:<profile>[:<n>][:wall]', 'agent[:<socket path>]' or "
    "'none' (default: env ZEUS_GPU, else NVIDIA or AMD GPUs if found)."
)

_CAP_SYS_ADMIN_BIT = 21


def _gpu_section(console: Console, backend: str | None) -> None:
    """The GPUs of the backend in force; with none chosen, those of every vendor found."""
    from zeus.device import BACKENDS, get_gpus, gpu_backend, hardware_status

    spec = gpu_backend(backend)
    if spec:
        gpus = get_gpus(backend=spec)
        if gpus:
            _gpu_table(console, spec, gpus)
        else:
            console.print(f"GPUs: none (backend {spec!r})")
        return
    found = False
    for name, (available, words) in hardware_status().items():
        if available:
            found = True
            _gpu_table(console, name, get_gpus(backend=name))
        else:
            console.print(f"GPUs: no {BACKENDS[name].hardware} GPU ({words})")
    if not found:
        console.print(
            "  try a replay GPU: --gpu replay:a40-resnet50 or ZEUS_GPU=replay:a40-resnet50"
        )


def _gpu_table(console: Console, backend: str, gpus: list[GPU]) -> None:
    table = Table(title=f"GPUs (backend: {backend})")
    for column in (
        "index",
        "name",
        "limit W min/dflt/now/max",
        "energy counter",
        "set limit",
        "board",
        "temp",
    ):
        table.add_column(column)
    for gpu in gpus:
        caps = gpu.capabilities
        table.add_row(
            str(gpu.index),
            gpu.name,
            f"{gpu.min_power_limit_w}/{gpu.default_power_limit_w}/"
            f"{gpu.get_power_limit_w()}/{gpu.max_power_limit_w}",
            "yes" if caps.energy_counter else "no (power sampling)",
            "yes" if caps.set_power_limit else "no (below)",
            f"shared: {gpu.board_id} (figures are the board's)" if caps.shared_board else "own",
            _temperature(gpu),
        )
    console.print(table)
    for gpu in gpus:  # reasons are sentences: below the table, where they do not wrap in a cell
        if not gpu.capabilities.set_power_limit:
            console.print(f"  GPU {gpu.index} limit: no: {gpu.set_power_limit_denied_reason}")
    if any(g.capabilities.simulated for g in gpus):
        console.print(
            "  [yellow]replay GPUs: figures are replayed from measured profiles, not hardware[/]"
        )


def _temperature(gpu: GPU) -> str:
    if not gpu.capabilities.thermals:
        return "n/a"
    thermals = gpu.thermals()
    text = "n/a" if thermals.temperature_c is None else f"{thermals.temperature_c:.0f} °C"
    if thermals.throttle_reasons:
        text += f" ({', '.join(sorted(thermals.throttle_reasons))})"
    return text


def _profiles_section(console: Console, list_all: bool) -> None:
    from zeus.device.replay import list_profiles

    names = list_profiles()
    logs = [n for n in names if "-bs" not in n]
    console.print(
        f"Replay profiles: {len(names)} ({len(logs)} from profiling logs, "
        f"{len(names) - len(logs)} from power traces)"
    )
    shown = names if list_all else logs
    console.print("  " + ", ".join(shown))
    if not list_all:
        console.print(
            "  and <gpu>-<dataset>-<network>-bs<N> from the power traces (--profiles lists all)"
        )


def _cpu_section(console: Console, rapl_root: str) -> None:
    from zeus.device.rapl import rapl_cpus
    from zeus.errors import ZeusDeviceError

    try:
        cpus = rapl_cpus(rapl_root)
    except ZeusDeviceError as e:
        console.print(f"CPUs (RAPL): unreadable: {e}")
        return
    if not cpus:
        console.print(f"CPUs (RAPL): none found under {rapl_root} (CPU energy is not measured)")
        return
    parts = [f"package {c.index}" + (" + DRAM" if c.has_dram else "") for c in cpus]
    console.print(f"CPUs (RAPL): {', '.join(parts)}")


def _frameworks_section(console: Console) -> None:
    found = []
    for module, dist in (("torch", "torch"), ("jax", "jax"), ("cupy", "cupy")):
        if importlib.util.find_spec(module) is None:
            found.append(f"{module}: not installed")
            continue
        try:
            found.append(f"{module} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{module} (version unknown)")
    console.print("Frameworks: " + "; ".join(found))


def _has_cap_sys_admin() -> bool | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_SYS_ADMIN_BIT & 1)
    except (OSError, ValueError):
        return None
    return None


def _permissions_section(console: Console) -> None:
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    cap = _has_cap_sys_admin()
    cap_text = "unknown" if cap is None else ("yes" if cap else "no")
    verdict = (
        "may change GPU power limits"
        if root or cap
        else "cannot change GPU power limits (observe-and-recommend only)"
    )
    console.print(
        f"Permissions: root={'yes' if root else 'no'}, CAP_SYS_ADMIN={cap_text}: {verdict}"
    )


def _agent_section(console: Console, backend: str | None) -> bool:
    """The node agent: whether it answers, its leases, and what this process may do through it.
    Shown when the GPU backend is ``agent`` or an agent socket exists at the default path. True when
    the agent is the backend: what this process may do is then the agent's to say."""
    from zeus.agent.settings import DEFAULT_SOCKET
    from zeus.device import gpu_backend
    from zeus.device.agent_client import client_for
    from zeus.errors import ZeusError

    name, _, arg = gpu_backend(backend).partition(":")
    path = (arg or DEFAULT_SOCKET) if name == "agent" else DEFAULT_SOCKET
    if name != "agent" and not os.path.exists(path):
        return False
    try:
        client = client_for(path)
        health = client.call("GET", "/health")
        caller = client.call("GET", "/caller")
        leases = client.call("GET", "/leases")
    except ZeusError as e:
        console.print(f"Agent: {e}", markup=False)
        return name == "agent"
    console.print(
        f"Agent: {path}: {health['gpus']} GPU(s) from {health['backend']!r}, "
        f"{len(leases)} lease(s)",
        markup=False,
    )
    for lease in leases:
        limits = ", ".join(f"{uuid} (restores {w} W)" for uuid, w in lease["original_w"].items())
        console.print(
            f"  job {lease['job_id']!r} (pid {lease['pid']}, uid {lease['uid']}) holds {limits}",
            markup=False,
        )
    if caller["may_lease"]:
        verdict = "may lease free GPUs and change their limits (no root or CAP_SYS_ADMIN needed)"
    else:
        verdict = f"may read, not change limits: {caller['reason']}"
    console.print(f"  this process (uid {caller['uid']}): {verdict}", markup=False)
    return name == "agent"


def show_env(
    gpu: str = typer.Option(None, "--gpu", help=GPU_OPTION_HELP),
    profiles: bool = typer.Option(False, "--profiles", help="List every replay profile."),
    rapl_root: str = typer.Option("/sys/class/powercap", help="powercap sysfs root."),
) -> None:
    """Show GPUs (limits, capabilities), replay profiles, CPUs/RAPL, frameworks, permissions and
    the node agent (its leases, and what this process may do through it)."""
    console = make_console()
    _gpu_section(console, gpu)
    _profiles_section(console, profiles)
    _cpu_section(console, rapl_root)
    _frameworks_section(console)
    if not _agent_section(console, gpu):
        _permissions_section(console)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("show-env")(show_env)
