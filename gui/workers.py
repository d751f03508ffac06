"""Background work: core functions run on worker threads and report back through signals.

A `TaskRunner` is one lane of work: a QThreadPool with a single thread, so its tasks run one at a
time in submission order, plus a `WorkerContext` (its own Store, models loaded once) that only that
lane's thread touches. A task's function receives a `TaskProgress` callback: it throttles progress
signals to one per 0.1 % and raises `protoshelf.core.progress.Cancelled` once cancellation was requested, so
core code stops at a batch boundary. Results, exceptions and cancellations come back as queued
signals, delivered on the GUI thread. Torch's inference mode is thread-local; the core's
FeatureExtractor enters it on the worker thread, where the inference runs.

`TaskRunner.run(..., on_success=..., failure_title=...)` handles a task's outcome in one place (as
Anki's CollectionOp does): callers say what to do with a result, and a failure becomes the lane's
`problem(title, details)` signal; nothing reaches a caller once the lane is closed.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot

from protoshelf.core.progress import Cancelled
from protoshelf.core.store import Store

log = logging.getLogger(__name__)


def failure_text(error: BaseException) -> str:
    """What a failed task's dialog says: a refusal's own words, else protoshelf.core.errors' one sentence
    ("the disk is full…", "the catalog is busy…") instead of a database driver's message. An error
    nobody foresaw gets its traceback below that first line, for the dialog's details (the command
    line says "run again with --debug" instead)."""
    from protoshelf.core.errors import known_message, unexpected_message

    known = known_message(error)
    if known is not None:
        return known
    return f"{unexpected_message(error)}\n\n{''.join(traceback.format_exception(error)).rstrip()}"


class TaskKind(str, Enum):
    """What a task is, for cancelling by kind and for the status bar; equal to its string value."""

    LOAD = "load"
    EDIT = "edit"
    FIT = "fit"
    SAVE = "save"
    SAVE_FOR_EXPORT = "save-for-export"
    EXPORT = "export"
    EMBED = "embed"
    IMPORT = "import"
    TITLES = "titles"
    SIMILAR = "similar"
    SUGGEST = "suggest"
    DUPLICATES = "duplicates"
    BACKBONE = "backbone"
    META_TRAIN = "meta-train"
    TRY = "try"
    CATCH_UP = "catch-up"

    def __str__(self) -> str:
        return self.value


@dataclass
class Outcome:
    """What to do when a task ends; every callback runs on the GUI thread, none after the lane closed."""

    on_success: Callable[[Any], None] | None = None
    on_failure: Callable[[BaseException], None] | None = None
    failure_title: str | None = None
    on_cancel: Callable[[], None] | None = None
    after: Callable[["Task"], None] | None = None


class WorkerContext:
    """What one lane's tasks share; the Store is opened on first use, on the worker thread."""

    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path)
        self.cache: dict[Any, Any] = {}
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.db_path)
        return self._store

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """A model or classifier built once per lane and kept for the next task."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self.cache.clear()


class TaskProgress:
    """The `progress(done, total)` callback handed to core functions running in a task."""

    STEPS = 1000

    def __init__(self, task: "Task"):
        self.task = task
        self._last: tuple[int, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.task.cancel_requested:
            raise Cancelled
        step = (self.STEPS * done // total if total else self.STEPS, total)
        if step != self._last:
            self._last = step
            self.task.progressed.emit(done, total)

    def stage(self, text: str) -> None:
        """Name what the task does now, e.g. "Embedding titles" after "Embedding images"."""
        self._last = None
        self.task.staged.emit(text)


class Task(QObject):
    """One call of `fn(context, progress, *args)` on a worker; exactly one outcome signal is sent."""

    started = Signal(object)
    progressed = Signal(int, int)
    staged = Signal(str)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    finished = Signal(object)

    def __init__(self, label: str, fn: Callable[..., Any], *args: Any, kind: str = "", **kwargs: Any):
        super().__init__()
        self.label = label
        self.kind = kind
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.outcome: str | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.duration = 0.0
        self._cancel = threading.Event()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def run(self, context: WorkerContext) -> None:
        """Runs on the worker thread; touches no widget and no GUI-thread object but its own signals."""
        self.started.emit(self)
        start = time.perf_counter()
        try:
            if self.cancel_requested:
                raise Cancelled
            self.result = self.fn(context, TaskProgress(self), *self.args, **self.kwargs)
        except Cancelled:
            self.outcome = "cancelled"
            self.cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - every failure is relayed to the UI
            log.exception("%s failed", self.label)
            self.outcome, self.error = "failed", exc
            self.failed.emit(exc)
        else:
            self.outcome = "succeeded"
            self.succeeded.emit(self.result)
        finally:
            self.duration = time.perf_counter() - start
            self.finished.emit(self)


class TaskRunner(QObject):
    """A lane: tasks run in order on one worker thread with their own Store."""

    task_submitted = Signal(object)
    task_started = Signal(object)
    task_finished = Signal(object)
    problem = Signal(str, str)

    def __init__(self, db_path: str | Path, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self.context = WorkerContext(db_path)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.pending: list[Task] = []
        self.closed = False
        self._outcomes: dict[Task, Outcome] = {}

    def submit(self, task: Task) -> Task:
        """Start a task; connect to its signals before this, since a quick task may finish at once."""
        task.started.connect(self._relay_started)
        task.finished.connect(self._relay_finished)
        self.pending.append(task)
        self.task_submitted.emit(task)
        self.pool.start(partial(task.run, self.context))
        return task

    def run(
        self, label: str, fn: Callable[..., Any], *args: Any, kind: TaskKind | str = "",
        on_success: Callable[[Any], None] | None = None, failure_title: str | None = None,
        on_failure: Callable[[BaseException], None] | None = None, on_cancel: Callable[[], None] | None = None,
        after: Callable[[Task], None] | None = None, on_progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> Task:
        """Submit `fn(context, progress, *args, **kwargs)`. On the GUI thread, once it ends: `on_success(result)`;
        a failure is reported as `problem(failure_title, error)` (and/or given to `on_failure`); `on_cancel()`;
        then `after(task)` whatever happened. `on_progress` must be a slot of a GUI-thread object."""
        task = Task(label, fn, *args, kind=kind, **kwargs)
        self._outcomes[task] = Outcome(on_success, on_failure, failure_title, on_cancel, after)
        if on_progress is not None:
            task.progressed.connect(on_progress)
        return self.submit(task)

    def close(self) -> None:
        """From now on no outcome reaches the callers: their objects are being torn down."""
        self.closed = True

    def cancel(self, kind: str | None = None) -> None:
        """Cancel running and queued tasks (of one kind): queued ones end as soon as they start."""
        for task in self.pending:
            if kind is None or task.kind == kind:
                task.cancel()

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def wait(self, msecs: int = -1) -> bool:
        """Block until the lane is idle; only for shutdown and scripts, never from a slot."""
        return self.pool.waitForDone(msecs)

    def shutdown(self) -> None:
        self.cancel()
        self.pool.waitForDone()
        self.context.close()

    @Slot(object)
    def _relay_started(self, task: Task) -> None:
        self.task_started.emit(task)

    @Slot(object)
    def _relay_finished(self, task: Task) -> None:
        if task in self.pending:
            self.pending.remove(task)
        outcome = self._outcomes.pop(task, None)
        if outcome is not None and not self.closed:
            self._deliver(task, outcome)
        self.task_finished.emit(task)

    def _deliver(self, task: Task, outcome: Outcome) -> None:
        if task.outcome == "succeeded" and outcome.on_success is not None:
            outcome.on_success(task.result)
        elif task.outcome == "failed":
            if outcome.failure_title is not None:
                self.problem.emit(outcome.failure_title, failure_text(task.error))
            if outcome.on_failure is not None:
                outcome.on_failure(task.error)
        elif task.outcome == "cancelled" and outcome.on_cancel is not None:
            outcome.on_cancel()
        if outcome.after is not None:
            outcome.after(task)
