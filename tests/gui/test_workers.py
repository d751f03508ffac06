"""The task runner: work off the GUI thread, results and failures back on it, cancellation."""
from __future__ import annotations

import importlib
import sys
import threading

import pytest
from PySide6.QtCore import QObject, Slot

from protoshelf.core.progress import Cancelled
from protoshelf.gui.workers import Task, TaskKind, TaskRunner


class Recorder(QObject):
    """Receives task signals on the GUI thread, noting which thread each slot ran on."""

    def __init__(self):
        super().__init__()
        self.threads: list[int] = []
        self.results: list = []
        self.errors: list = []
        self.progress: list[tuple[int, int]] = []
        self.cancelled = 0

    @Slot(object)
    def on_result(self, result) -> None:
        self.threads.append(threading.get_ident())
        self.results.append(result)

    @Slot(object)
    def on_error(self, error) -> None:
        self.threads.append(threading.get_ident())
        self.errors.append(error)

    @Slot(int, int)
    def on_progress(self, done: int, total: int) -> None:
        self.progress.append((done, total))

    @Slot()
    def on_cancelled(self) -> None:
        self.cancelled += 1


@pytest.fixture
def runner(tmp_path):
    lane = TaskRunner(tmp_path / "c.sqlite", "test")
    yield lane
    lane.shutdown()


def connect(task: Task, recorder: Recorder) -> Task:
    task.succeeded.connect(recorder.on_result)
    task.failed.connect(recorder.on_error)
    task.progressed.connect(recorder.on_progress)
    task.cancelled.connect(recorder.on_cancelled)
    return task


def test_work_runs_off_the_gui_thread_and_its_result_arrives_on_it(qtbot, runner):
    gui_thread = threading.get_ident()
    recorder = Recorder()

    def work(context, progress):
        return threading.get_ident(), context.store.item_count()

    task = connect(Task("count", work), recorder)
    with qtbot.waitSignal(task.finished, timeout=10_000):
        runner.submit(task)
    (worker_thread, count), = recorder.results
    assert worker_thread != gui_thread
    assert count == 0
    assert recorder.threads == [gui_thread]
    qtbot.waitUntil(lambda: not runner.busy)


@pytest.mark.parametrize("error", [ValueError("bad value"), OSError("disk full"), KeyError("missing")])
def test_failures_are_relayed_to_the_gui_thread(qtbot, runner, error):
    recorder = Recorder()

    def work(context, progress):
        raise error

    task = connect(Task("fail", work), recorder)
    with qtbot.waitSignal(task.finished, timeout=10_000):
        runner.submit(task)
    assert recorder.errors == [error]
    assert recorder.threads == [threading.get_ident()]
    assert task.outcome == "failed" and task.error is error


def test_progress_is_throttled_and_cancel_stops_at_the_next_report(qtbot, runner):
    recorder = Recorder()
    started = threading.Event()
    release = threading.Event()
    calls = []

    def work(context, progress):
        for done in range(100_000):
            progress(done, 100_000)
            calls.append(done)
            if done == 50_000:
                started.set()
                release.wait(10)
        return "finished"

    task = connect(Task("long", work), recorder)
    runner.submit(task)
    assert started.wait(10)
    task.cancel()
    with qtbot.waitSignal(task.finished, timeout=10_000):
        release.set()
    assert task.outcome == "cancelled" and recorder.cancelled == 1
    assert calls[-1] == 50_000
    assert recorder.results == []
    assert 0 < len(recorder.progress) <= 1001


def test_queued_tasks_of_a_kind_are_cancelled_before_they_start(qtbot, runner):
    recorder = Recorder()
    gate = threading.Event()
    ran = []

    def blocker(context, progress):
        gate.wait(10)

    def work(context, progress, name):
        ran.append(name)
        return name

    runner.submit(Task("block", blocker))
    fit = connect(Task("fit", work, "fit", kind="fit"), recorder)
    export = connect(Task("export", work, "export", kind="export"), recorder)
    runner.submit(fit)
    runner.submit(export)
    runner.cancel(kind="fit")
    with qtbot.waitSignal(export.finished, timeout=10_000):
        gate.set()
    assert ran == ["export"]
    assert fit.outcome == "cancelled" and export.outcome == "succeeded"


def test_cancelled_raised_by_core_code_counts_as_cancelled(qtbot, runner):
    def work(context, progress):
        raise Cancelled

    task = Task("stop", work)
    with qtbot.waitSignal(task.cancelled, timeout=10_000):
        runner.submit(task)
    qtbot.waitUntil(lambda: not runner.busy)
    assert task.outcome == "cancelled"


def test_run_handles_each_outcome_in_one_place(qtbot, runner):
    """Success goes to on_success, a failure becomes the lane's problem signal, `after` always runs."""
    seen: list = []

    def fail(context, progress):
        raise OSError("disk full")

    with qtbot.waitSignal(runner.task_finished):
        runner.run("ok", lambda context, progress: 42, kind=TaskKind.FIT, on_success=seen.append,
                   after=lambda task: seen.append(task.kind))
    assert seen == [42, TaskKind.FIT] and TaskKind.FIT == "fit"
    with qtbot.waitSignal(runner.problem) as problem, qtbot.waitSignal(runner.task_finished):
        runner.run("bad", fail, on_success=seen.append, failure_title="Export failed",
                   on_failure=lambda error: seen.append(type(error)))
    assert problem.args == ["Export failed", "disk full"]
    assert seen[2:] == [OSError]


def test_a_closed_lane_delivers_no_outcome(qtbot, runner):
    seen: list = []
    gate = threading.Event()
    runner.run("slow", lambda context, progress: gate.wait(5), on_success=seen.append,
               after=lambda task: seen.append("after"))
    runner.close()
    gate.set()
    runner.wait()
    qtbot.wait(50)
    assert seen == []


def test_jobs_enter_torch_from_the_top_so_two_lanes_never_meet_inside_its_circular_imports(tmp_path, monkeypatch):
    """Two lanes entering a circle of imports from different modules at once: Python breaks the
    deadlock by handing one of them a partially initialized module (torchvision's "partially
    initialized module" after a failed model load). Jobs import the top module first."""
    from protoshelf.gui import jobs

    # Like torch: fine when entered from the top, not from inside (circle_top reads circle_inner.SUFFIX).
    (tmp_path / "circle_top.py").write_text(
        "import time\ntime.sleep(0.3)\nimport circle_inner\nNAME = 'top' + circle_inner.SUFFIX\n")
    (tmp_path / "circle_inner.py").write_text(
        "import time\ntime.sleep(0.3)\nimport circle_top\nSUFFIX = ''\ndef name():\n    return circle_top.NAME\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(jobs, "TORCH_MODULES", ("circle_top",))
    names, failures = [], []

    def job(entry):  # what a job's own imports do: enter the circle where they need it
        module = importlib.import_module(entry)
        names.append(module.NAME if entry == "circle_top" else module.name())

    def lane(entry):
        try:
            jobs.needs_torch(job)(entry)
        except Exception as exc:  # noqa: BLE001 - the failure is what the test looks for
            failures.append(exc)

    lanes = [threading.Thread(target=lane, args=(entry,)) for entry in ("circle_top", "circle_inner")]
    try:
        for thread in lanes:
            thread.start()
        for thread in lanes:
            thread.join()
    finally:
        for module in ("circle_top", "circle_inner"):
            sys.modules.pop(module, None)

    assert not failures and sorted(names) == ["top", "top"]


def test_a_refusal_reads_the_same_in_a_dialog_as_on_the_command_line():
    from protoshelf.core.errors import known_message
    from protoshelf.gui.workers import failure_text

    for refusal in (ValueError("the file\n  is not a catalog"), ValueError()):  # the second was an empty dialog
        assert failure_text(refusal) == known_message(refusal) != ""
