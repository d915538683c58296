"""`zeus show-env`: what Zeus can see and do on this machine."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from zeus.cli.console import make_console

GPU_OPTION_HELP = (
    "GPU backend: 'nvml', 'replay:<profile>[:<n>][:wall]' or 'none' "
    "(default: env ZEUS_GPU, else NVIDIA GPUs if NVML finds any)."
)

_CAP_SYS_ADMIN_BIT = 21


def _gpu_section(console: Console, backend: str | None) -> None:
    from zeus.device import get_gpus
    from zeus.device.nvml import nvml_status

    spec = backend if backend is not None else os.environ.get("ZEUS_GPU", "")
    gpus = get_gpus(backend=backend)
    if not gpus:
        if spec.strip() == "none":
            console.print("GPUs: none (backend 'none')")
        else:
            console.print(f"GPUs: no NVIDIA GPU ({nvml_status()})")
            console.print(
                "  try a replay GPU: --gpu replay:a40-resnet50 or ZEUS_GPU=replay:a40-resnet50"
            )
        return
    table = Table(title=f"GPUs (backend: {spec or 'nvml'})")
    for column in ("index", "name", "limit W min/dflt/now/max", "energy counter", "set limit"):
        table.add_column(column)
    for gpu in gpus:
        caps = gpu.capabilities
        reason = getattr(gpu, "set_power_limit_denied_reason", None)
        table.add_row(
            str(gpu.index),
            gpu.name,
            f"{gpu.min_power_limit_w}/{gpu.default_power_limit_w}/"
            f"{gpu.get_power_limit_w()}/{gpu.max_power_limit_w}",
            "yes" if caps.energy_counter else "no (power sampling)",
            "yes" if caps.set_power_limit else f"no: {reason or 'not permitted'}",
        )
    console.print(table)
    if spec.startswith("replay:"):
        console.print(
            "  [yellow]replay GPUs: figures are replayed from measured profiles, not hardware[/]"
        )


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


def show_env(
    gpu: str = typer.Option(None, "--gpu", help=GPU_OPTION_HELP),
    profiles: bool = typer.Option(False, "--profiles", help="List every replay profile."),
    rapl_root: str = typer.Option("/sys/class/powercap", help="powercap sysfs root."),
) -> None:
    """Show GPUs (limits, capabilities), replay profiles, CPUs/RAPL, frameworks and permissions."""
    console = make_console()
    _gpu_section(console, gpu)
    _profiles_section(console, profiles)
    _cpu_section(console, rapl_root)
    _frameworks_section(console)
    _permissions_section(console)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("show-env")(show_env)
