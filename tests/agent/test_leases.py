"""Leases, restores, the journal and the audit log, on replay GPUs, with real processes as holders
(``sleep`` children that the tests kill)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.helpers import audit
from tests.device.fake_nvml import FakeBoard, FakeNVML
from zeus.agent.access import Access
from zeus.agent.audit import AuditLog
from zeus.agent.devices import Devices
from zeus.agent.errors import Forbidden, InvalidRequest, LeaseConflict, NotLeased, UnknownGPU
from zeus.agent.journal import Journal
from zeus.agent.leases import LeaseBook
from zeus.agent.peer import Peer, Process
from zeus.device.nvml import nvml_gpus
from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusConfigError


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes to act as jobs; each is killed at the end if the test did not."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for p in processes:
        p.kill()
        p.wait()


def job(holders: list[subprocess.Popen[bytes]]) -> Peer:
    process = subprocess.Popen(["sleep", "600"])
    holders.append(process)
    return Peer.of_process(process.pid)


def kill(holders: list[subprocess.Popen[bytes]], peer: Peer, reap: bool = True) -> None:
    process = next(p for p in holders if p.pid == peer.pid)
    process.send_signal(signal.SIGKILL)
    if reap:
        process.wait()
        return
    deadline = time.monotonic() + 10
    while Path(f"/proc/{peer.pid}/stat").read_text().split(") ")[1][0] != "Z":  # a zombie
        assert time.monotonic() < deadline
        time.sleep(0.005)


def make_book(state: Path, gpus: list[ReplayGPU] | None = None, access: Access | None = None):  # type: ignore[no-untyped-def]
    gpus = gpus or [ReplayGPU("a40-resnet50", index=i, state_dir=state / "replay") for i in (0, 1)]
    return LeaseBook(
        Devices(gpus),
        Journal(state / "journal.json"),
        AuditLog(state / "audit.jsonl"),
        access or Access(),
    )


def test_a_lease_journals_the_original_limit_before_any_change(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    book = make_book(tmp_path)
    a = job(holders)
    lease = book.acquire(a, ["0"], "resnet-nightly")
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["leases"] == [lease.to_dict()]
    assert lease.original_w == {"replay-a40-resnet50-0": 300}
    assert (lease.holder, lease.uid, lease.job_id) == (a.process, a.uid, "resnet-nightly")
    book.set_limit(a, book.devices.find("0"), 175)
    assert book.devices.find("0").get_power_limit_w() == 175
    entries = audit(tmp_path)
    assert [e["event"] for e in entries] == ["lease", "set"]
    assert entries[1] | {"time": None} == {
        "time": None,
        "event": "set",
        "uid": a.uid,
        "pid": a.pid,
        "job_id": "resnet-nightly",
        "gpu": "replay-a40-resnet50-0",
        "old_w": 300,
        "new_w": 175,
    }
    assert json.loads((tmp_path / "journal.json").read_text())["leases"][0]["limits_w"] == {
        "replay-a40-resnet50-0": 175
    }


def test_only_the_holder_changes_its_gpus(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    book = make_book(tmp_path)
    a, b = job(holders), job(holders)
    gpu0 = book.devices.find("replay-a40-resnet50-0")
    book.acquire(a, ["0"], "job-a")
    with pytest.raises(LeaseConflict, match=rf"GPU 0 .* is leased by job 'job-a' \(pid {a.pid}"):
        book.acquire(b, ["1", "0"], "job-b")
    assert book.lease_of(book.devices.find("1")) is None  # all or nothing
    with pytest.raises(LeaseConflict, match="job-a"):
        book.set_limit(b, gpu0, 150)
    with pytest.raises(LeaseConflict, match="job-a"):
        book.set_limit(b, gpu0, 300)  # even the no-op probe: b may not change GPU 0 now
    with pytest.raises(NotLeased, match="not leased by this process: lease it first"):
        book.set_limit(b, book.devices.find("1"), 150)
    book.set_limit(b, book.devices.find("1"), 300)  # writing the current limit back needs no lease
    with pytest.raises(NotLeased):
        book.step(b, book.devices.find("1"), 32, False)
    assert gpu0.get_power_limit_w() == 300
    assert book.refusal(b, gpu0) is not None and book.refusal(a, gpu0) is None
    refused = [e for e in audit(tmp_path) if e["event"] == "refused"]
    assert len(refused) == 3 and all(e["pid"] == b.pid for e in refused)  # not "lease it first"


def test_a_lease_grows_for_its_job_only(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    book = make_book(tmp_path)
    a = job(holders)
    first = book.acquire(a, ["0"], "job-a")
    again = book.acquire(a, ["replay-a40-resnet50-0", "1"], "job-a")
    assert again is first and set(first.original_w) == {
        "replay-a40-resnet50-0",
        "replay-a40-resnet50-1",
    }
    with pytest.raises(LeaseConflict, match=r"already holds lease .* as job 'job-a'"):
        book.acquire(a, ["0"], "another-job")
    with pytest.raises(UnknownGPU, match=r"GPU '7' is not on this node: allowed indices 0\.\.1"):
        book.acquire(a, ["7"], "job-a")


@pytest.mark.parametrize("reaped", [True, False], ids=["exited", "zombie"])
def test_a_killed_holder_gets_its_gpus_restored(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]], reaped: bool
) -> None:
    book = make_book(tmp_path)
    a = job(holders)
    book.acquire(a, ["0", "1"], "job-a")
    book.set_limit(a, book.devices.find("0"), 150)
    book.set_limit(a, book.devices.find("1"), 200)
    book.reap()
    assert book.leases  # alive: nothing happens
    kill(holders, a, reap=reaped)  # a zombie (not yet waited for) runs no code: gone too
    book.reap()
    assert not book.leases
    assert [g.get_power_limit_w() for g in book.devices.gpus] == [300, 300]
    events = [(e["event"], e.get("old_w"), e.get("new_w")) for e in audit(tmp_path)]
    assert events[-3:] == [("restore", 150, 300), ("restore", 200, 300), ("release", None, None)]
    assert "holder is gone" in audit(tmp_path)[-1]["reason"]
    assert json.loads((tmp_path / "journal.json").read_text())["leases"] == []


def test_a_reused_pid_is_not_the_holder(holders: list[subprocess.Popen[bytes]]) -> None:
    peer = job(holders)
    assert peer.process is not None and peer.process.alive()
    assert not Process(peer.pid, peer.process.start_ticks + 1).alive()


def test_release_restores_and_only_the_holder_may(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    book = make_book(tmp_path)
    a, b = job(holders), job(holders)
    lease = book.acquire(a, ["1"], "job-a")
    book.set_limit(a, book.devices.find("1"), 125)
    with pytest.raises(Forbidden, match="held by job 'job-a', not by you"):
        book.release(b, lease.id)
    book.release(a, lease.id)
    assert book.devices.find("1").get_power_limit_w() == 300 and not book.leases


def test_a_restarted_agent_restores_leases_of_holders_that_are_gone(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    book = make_book(tmp_path)
    gone, alive = job(holders), job(holders)
    book.acquire(gone, ["0"], "gone")
    book.acquire(alive, ["1"], "alive")
    book.set_limit(gone, book.devices.find("0"), 150)
    book.set_limit(alive, book.devices.find("1"), 175)
    kill(holders, gone)
    # The agent dies here (nothing more is written) and a new one starts from the journal.
    restarted = make_book(tmp_path)
    restarted.recover()
    assert [g.get_power_limit_w() for g in restarted.devices.gpus] == [300, 175]
    assert [le.job_id for le in restarted.leases.values()] == ["alive"]
    restore = next(e for e in audit(tmp_path) if e["event"] == "restore")
    assert restore["job_id"] == "gone" and "after an agent restart" in restore["reason"]
    restarted.set_limit(alive, restarted.devices.find("1"), 200)  # the live job keeps its lease
    kill(holders, alive)
    restarted.reap()
    assert [g.get_power_limit_w() for g in restarted.devices.gpus] == [300, 300]


def test_an_unreadable_journal_stops_the_agent(tmp_path: Path) -> None:
    (tmp_path / "journal.json").write_text('{"version": 1, "leases": [')
    with pytest.raises(ZeusConfigError, match=r"journal .* is unreadable .* move it away"):
        make_book(tmp_path).recover()


def test_limits_outside_the_range_are_refused_with_the_range(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    book = make_book(tmp_path)
    a = job(holders)
    book.acquire(a, ["0"], "job-a")
    with pytest.raises(InvalidRequest, match=r"allowed 100\.\.300 W"):
        book.set_limit(a, book.devices.find("0"), 99)


def test_the_allow_list(tmp_path: Path, holders: list[subprocess.Popen[bytes]]) -> None:
    book = make_book(tmp_path, access=Access(frozenset({1000}), frozenset({2000})))
    peer = job(holders)
    as_user = Peer(peer.pid, 1234, 1234, frozenset({1234}), peer.start_ticks)
    with pytest.raises(
        Forbidden, match=r"uid 1234 may not lease .*: uids 1000; members of groups 2000;"
    ):
        book.acquire(as_user, ["0"], "job")
    in_group = Peer(peer.pid, 1234, 1234, frozenset({1234, 2000}), peer.start_ticks)
    book.acquire(in_group, ["0"], "job")
    unseen = Peer(0, 1000, 1000, frozenset(), None)  # a process in a pid namespace we cannot see
    with pytest.raises(Forbidden, match="hostPID"):
        book.acquire(unseen, ["1"], "job")
    with pytest.raises(Forbidden, match="TCP is read-only"):
        book.acquire(None, ["1"], "job")


def test_a_refused_restore_is_retried_until_the_driver_allows_it(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    board = FakeBoard(uuid="GPU-x")
    book = make_book(tmp_path, gpus=nvml_gpus(pynvml=FakeNVML([board])))  # type: ignore[arg-type]
    a = job(holders)
    book.acquire(a, ["GPU-x"], "job-a")
    book.set_limit(a, book.devices.find("0"), 250)
    board.may_set_limit = False  # e.g. the driver busy, or a reset in progress
    kill(holders, a)
    book.reap()
    book.reap()
    assert board.limit_mw == 250_000 and book.leases  # kept, journaled, retried
    failed = [e for e in audit(tmp_path) if e["event"] == "restore_failed"]
    assert len(failed) == 1 and "permission denied" in failed[0]["reason"]
    board.may_set_limit = True
    book.reap()
    assert board.limit_mw == 400_000 and not book.leases
