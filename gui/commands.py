"""Undoable catalog edits for the QUndoStack.

A command changes what the UI shows at once (through the session's in-memory labels) and queues
the database change on the session's edit lane, where edits run in the order they were made; undo
queues the inverse (Store.undo_labels, Store.restore_category, which reuses the category's id).
Functions handed to `session.edit` run on the worker thread and only touch the Store they get.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from PySide6.QtGui import QUndoCommand, QUndoStack

from protoshelf.core.store import CategoryRow, Store


class CatalogSession(Protocol):
    """What a command needs of the session (protoshelf.gui.session.CatalogSession), named here so this module
    does not import the session that imports it."""

    labels: dict[int, int]
    categories: list[CategoryRow]
    undo_stack: QUndoStack
    edits: int

    def category(self, category_id: int) -> CategoryRow: ...
    def apply_labels(self, changes: dict[int, int | None]) -> None: ...
    def apply_categories(self, categories: list[CategoryRow]) -> None: ...
    def apply_title(self, item_id: int, title: str) -> None: ...
    def edit(self, change: Callable[[Store], object], categories: bool = False, embeds: bool = False,
             then: Callable[[], None] | None = None) -> object: ...


def _show_undone(session: CatalogSession, before: dict[int, int | None], given: int | None) -> None:
    """Show an undo's labels at once on the items the window shows with the label the undone step
    gave; the others were relabelled since, and the catalog keeps theirs (Store.undo_labels)."""
    shown = session.labels
    session.apply_labels({i: label for i, label in before.items() if shown.get(i) == given})


def _distinct(item_ids) -> list[int]:
    return list(dict.fromkeys(int(i) for i in item_ids))


def _without(categories: list[CategoryRow], category_id: int | None) -> list[CategoryRow]:
    """The category list shown at once when one leaves it (a delete, an undone create)."""
    return [c for c in categories if c.id != category_id]


class _LabelsStep(QUndoCommand):
    """A step that gives items a label (LabelItems; CreateCategory's first examples). Undo puts back
    what they held on those that still hold it, and redo then labels only those: an item
    relabelled since (by the user while its import ran, by another process) keeps the later label."""

    def __init__(self, text: str, session: CatalogSession, item_ids: list[int], category_id: int | None,
                 before: dict[int, int | None]):
        super().__init__(text)
        self.session = session
        self.item_ids = item_ids
        self.category_id = category_id
        self.before = before
        self.kept: dict[int, int | None] = {}
        """Items an undo left alone, relabelled since this step, with the labels they kept."""
        self.edits_before = session.edits
        """The window's edits sent before this step's: orders it against a job's write."""
        self.written_since: int | None = None
        """For labels a job wrote (an import onto a category): the window's edit count when the
        job began. Steps pushed since then may have been written after the job's labels."""
        self.done = False
        """Whether the last of redo and undo was redo: what a write shows once it is done must
        not undo a later press (an undo pressed before a create is saved, say)."""

    def _ours(self) -> list[int]:
        return [i for i in self.item_ids if i not in self.kept]

    def _steps_below(self) -> list[_LabelsStep]:
        stack = self.session.undo_stack
        steps = [stack.command(i) for i in range(stack.count())]
        return [s for s in steps[:next(i for i, s in enumerate(steps) if s is self)] if isinstance(s, _LabelsStep)]

    def _label(self, store: Store) -> None:
        """On the edit lane: undo puts back what the catalog held, a label that the command line or
        another window set since this window read the labels included."""
        self.before.update(store.set_labels(self._ours(), self.category_id))

    def _unlabel(self, store: Store, below: Sequence[_LabelsStep] = ()) -> None:
        meanwhile = self._relabelled_meanwhile(below)
        leave = {i for _, i in meanwhile} | self.kept.keys()  # the last redo left those alone too
        self.kept = store.undo_labels(dict(self.before), self.category_id, leave=leave)
        for step, item in meanwhile:  # undone now, this step's label is not what the item held before theirs
            step.before[item] = self.before[item]

    def _relabelled_meanwhile(self, below: Sequence[_LabelsStep]) -> list[tuple[_LabelsStep, int]]:
        """(step, item) for labels a job wrote (an import onto a category): the steps pushed while
        the job ran, so below this one on the stack, that relabelled one of its items after the job
        wrote it (their `before` is the job's label), perhaps to the same label. The user labelled
        a file while its drop import ran: undoing the import leaves that item as the user left it,
        and undoing the user's step then puts back what the item held before the import, not the
        import's label. Steps pushed before the job began were written before it. A redo of this
        step needs no rewrite back: the stack undoes those steps only after this one again."""
        if self.written_since is None:
            return []
        return [(step, item) for step in below if step.edits_before >= self.written_since
                for item in self.before if item in step.before and step.before[item] == self.category_id]

    def _show_labelled(self) -> None:
        """After redo is written (an undo just before it may have left more items alone)."""
        if self.done:
            self.session.apply_labels({**dict.fromkeys(self._ours(), self.category_id), **self.kept})

    def _show_before(self) -> None:
        """After undo is written: what the catalog holds shows, labels another process had set
        included (unless redone meanwhile)."""
        if not self.done:
            self.session.apply_labels({**self.before, **self.kept})


class LabelItems(_LabelsStep):
    """Make items examples of a category, or (category None) plain unlabelled items again."""

    def __init__(self, session: CatalogSession, item_ids: list[int], category_id: int | None, text: str,
                 written: dict[int, int | None] | None = None, written_since: int | None = None):
        """`written`: the labels are in the catalog already (a job wrote them), and this is what
        it replaced; the first redo then only shows them. `written_since`: the window's edit
        count when that job began."""
        ids = _distinct(item_ids)
        before = dict(written) if written is not None else {i: session.labels.get(i) for i in ids}
        super().__init__(text, session, ids, category_id, before)
        self.written = written is not None
        self.written_since = written_since

    def redo(self) -> None:
        self.done = True
        self.session.apply_labels(dict.fromkeys(self._ours(), self.category_id))
        if self.written:
            self.written = False
            return
        self.session.edit(self._label, then=self._show_labelled)

    def undo(self) -> None:
        self.done = False
        below = self._steps_below() if self.written_since is not None else []  # the stack is the GUI thread's
        left = {item for _, item in self._relabelled_meanwhile(below)} | self.kept.keys()
        _show_undone(self.session, {i: b for i, b in self.before.items() if i not in left}, self.category_id)
        self.session.edit(lambda store: self._unlabel(store, below), then=self._show_before)  # after _label


class CreateCategory(_LabelsStep):
    """A new category, optionally with first examples (N on a selection); the id is the store's, so
    the examples are shown once the worker has created it."""

    def __init__(self, session: CatalogSession, name: str, colour: str | None = None, examples: list[int] = ()):
        ids = _distinct(examples)
        super().__init__(f"New category {name!r}" + (f" from {len(ids)} items" if ids else ""),
                         session, ids, None, {i: session.labels.get(i) for i in ids})
        self.name = name
        self.colour = colour

    def _create(self, store: Store) -> None:
        if self.category_id is None:
            self.category_id = store.create_category(self.name, self.colour)
            self.colour = next(c.colour for c in store.categories() if c.id == self.category_id)
        else:
            store.restore_category(self.category_id, self.name, self.colour, {})
        if self.item_ids:
            self._label(store)

    def redo(self) -> None:
        self.done = True
        self.session.edit(self._create, categories=True, then=self._show_labelled)

    def undo(self) -> None:
        """The category leaves the window at once: its key, pressed before the removal is written,
        must not label items with it."""
        self.done = False
        _show_undone(self.session, self.before, self.category_id)
        self.session.apply_categories(_without(self.session.categories, self.category_id))

        def remove(store: Store) -> None:
            self._unlabel(store)
            store.delete_category(self.category_id)  # an item left holding it (given since elsewhere) loses it
            self.kept = {i: None if label == self.category_id else label for i, label in self.kept.items()}

        self.session.edit(remove, categories=True, then=self._show_before)


class RenameCategory(QUndoCommand):
    def __init__(self, session: CatalogSession, category_id: int, name: str):
        old = session.category(category_id).name
        super().__init__(f"Rename {old!r} to {name!r}")
        self.session, self.category_id, self.old, self.new = session, category_id, old, name

    def redo(self) -> None:
        self._rename(self.new)

    def undo(self) -> None:
        self._rename(self.old)

    def _rename(self, name: str) -> None:
        """Shown at once, so that what comes next (a new name checked against the others, a
        delete that records the row for its undo) sees the name the user sees."""
        session = self.session
        session.apply_categories([replace(c, name=name) if c.id == self.category_id else c for c in session.categories])
        session.edit(lambda store: store.rename_category(self.category_id, name), categories=True)


class SetTitle(QUndoCommand):
    def __init__(self, session: CatalogSession, item_id: int, old: str, new: str):
        super().__init__(f"Title {new!r}" if new else "Remove title")
        self.session, self.item_id, self.old, self.new = session, item_id, old, new

    def redo(self) -> None:
        self.session.apply_title(self.item_id, self.new)

    def undo(self) -> None:
        self.session.apply_title(self.item_id, self.old)


class RecolourCategory(QUndoCommand):
    def __init__(self, session: CatalogSession, category_id: int, colour: str):
        row = session.category(category_id)
        super().__init__(f"Recolour {row.name!r}")
        self.session, self.category_id, self.old, self.new = session, category_id, row.colour, colour

    def redo(self) -> None:
        self.session.edit(lambda store: store.recolour_category(self.category_id, self.new), categories=True)

    def undo(self) -> None:
        self.session.edit(lambda store: store.recolour_category(self.category_id, self.old), categories=True)


class ReorderCategories(QUndoCommand):
    """A drag in the panel: the moved rows swap numbers; undo gives every row its number back."""

    def __init__(self, session: CatalogSession, category_ids: list[int]):
        super().__init__("Reorder categories")
        self.session = session
        self.new = list(category_ids)
        self.old = [c.id for c in session.categories if c.id in set(category_ids)]

    def redo(self) -> None:
        self.session.edit(lambda store: store.reorder_categories(self.new), categories=True)

    def undo(self) -> None:
        self.session.edit(lambda store: store.reorder_categories(self.old), categories=True)


class DeleteCategory(QUndoCommand):
    """Delete a category with its examples; undo brings both back under the same id."""

    def __init__(self, session: CatalogSession, category_id: int):
        row = session.category(category_id)
        super().__init__(f"Delete category {row.name!r}")
        self.session = session
        self.row = row
        self.examples = {i: c for i, c in session.labels.items() if c == category_id}
        self.kept: dict[int, int] = {}
        """Examples an undo left alone, labelled since by another process, with their labels."""
        self.done = False

    def redo(self) -> None:
        """Gone from the window at once: its key, pressed before the delete is written, must not
        label items with a category the catalog is about to drop."""
        self.done = True
        self.session.apply_labels(dict.fromkeys(self.examples))
        self.session.apply_categories(_without(self.session.categories, self.row.id))
        self.session.edit(self._delete, categories=True)

    def _delete(self, store) -> None:
        """On the edit lane: the examples the catalog held, which undo restores, include any that
        another window or the command line added since this window read them."""
        self.examples.update(store.delete_category(self.row.id))

    def undo(self) -> None:
        self.done = False
        row = self.row
        self.session.edit(self._restore, categories=True, then=self._show_examples_back)
        back = [*_without(self.session.categories, row.id), row]
        self.session.apply_categories(sorted(back, key=lambda c: c.position))
        _show_undone(self.session, self.examples, None)

    def _restore(self, store: Store) -> None:
        """On the lane, after the delete recorded the examples."""
        row = self.row
        self.kept = store.restore_category(row.id, row.name, row.colour, dict(self.examples), row.position)

    def _show_examples_back(self) -> None:
        """After undo is written: examples another process had added show too, and those it had
        relabelled keep their label (unless redone meanwhile)."""
        if not self.done:
            self.session.apply_labels({**self.examples, **self.kept})
