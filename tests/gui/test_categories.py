"""Categories beyond nine keys, stable numbers and safe accepting, driven through the real window."""
from __future__ import annotations

import threading

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from protoshelf.core.store import CategoryRow, Store, StoreError
from protoshelf.core.suggest import Suggestion
from protoshelf.gui import categories_panel
from protoshelf.gui.catalog_model import LabelRole, PredictionRole
from protoshelf.gui.category_picker import rank_categories
from protoshelf.gui.drops import category_mime
from protoshelf.gui.main_window import SHOW_SUGGESTED
from tests.gui.conftest import select_rows, two_selected, wait_idle
from tests.gui.test_main_window import category_point, drop, label_examples

import pytest


def panel_numbers(window) -> dict[str, str]:
    rows = window.panel.list
    return {rows.topLevelItem(i).text(1): rows.topLevelItem(i).text(0) for i in range(1, rows.topLevelItemCount())}


def test_deleting_a_category_keeps_every_other_key(qtbot, open_window, fake_catalog):
    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    session.delete_category(red)
    wait_idle(qtbot, session)
    assert panel_numbers(window) == {"Green": "2", "Blue": "3"}
    window.view.setFocus()
    select_rows(window, [0])
    item = window.view.selected_ids()[0]
    qtbot.keyClick(window.view, Qt.Key.Key_2)
    assert session.labels[item] == green
    select_rows(window, [1])
    qtbot.keyClick(window.view, Qt.Key.Key_1)
    assert "There is no category 1" in window.statusBar().currentMessage()
    session.undo_stack.undo()  # the label
    session.undo_stack.undo()  # the deletion: Red comes back as 1
    wait_idle(qtbot, session)
    assert panel_numbers(window) == {"Red": "1", "Green": "2", "Blue": "3"}


def test_dragging_a_row_reorders_the_numbers_and_undo_restores_them(qtbot, open_window, fake_catalog):
    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    target = category_point(window, red) - QPoint(0, 3)  # upper half of Red's row: before it
    drop(window.panel.list.viewport(), target, category_mime(window.session.store.path, blue))
    wait_idle(qtbot, session)
    assert panel_numbers(window) == {"Blue": "1", "Red": "2", "Green": "3"}
    assert Store(path).categories()[0].name == "Blue"
    assert session.category_at(1).id == blue
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert panel_numbers(window) == {"Red": "1", "Green": "2", "Blue": "3"}


def test_clicking_a_row_selects_and_double_clicking_filters(qtbot, open_window, fake_catalog):
    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    wait_idle(qtbot, window.session)
    rows = window.panel.list
    point = category_point(window, green)
    qtbot.mouseClick(rows.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert window.panel.selected_category() == green
    assert window.filter.currentData() != green
    qtbot.mouseDClick(rows.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert window.filter.currentData() == green
    assert window.filter.currentText() == "2 · Green"


def test_the_search_box_narrows_the_panel(qtbot, open_window, fake_catalog):
    path, *_ = fake_catalog
    window = open_window(path)
    qtbot.keyClicks(window.panel.search, "gre")
    rows = window.panel.list
    shown = [rows.topLevelItem(i).text(1) for i in range(rows.topLevelItemCount()) if not rows.topLevelItem(i).isHidden()]
    assert shown == ["Unassigned", "Green"]


def test_the_picker_labels_with_any_category_by_typing(qtbot, open_window, fake_catalog):
    path, truth, (red, green, blue) = fake_catalog
    window, ids = two_selected(qtbot, open_window(path))
    session = window.session
    qtbot.keyClick(window.view, Qt.Key.Key_L)
    picker = window.picker
    assert picker.isVisible()
    assert picker.windowModality() == Qt.WindowModality.WindowModal  # no other selection while it is open
    qtbot.keyClicks(picker.query, "blu")
    qtbot.keyClick(picker.query, Qt.Key.Key_Return)
    assert [session.labels.get(i) for i in ids] == [blue, blue]
    assert session.recent_categories[0] == blue


def test_labelling_with_a_category_deleted_meanwhile_says_so_and_changes_nothing(qtbot, open_window, fake_catalog):
    path, truth, (red, green, blue) = fake_catalog
    window, ids = two_selected(qtbot, open_window(path))
    session = window.session
    notices = []
    session.notice.connect(notices.append)
    session.delete_category(blue)
    wait_idle(qtbot, session)
    session.label(ids, blue)  # a picker or menu built before the delete
    wait_idle(qtbot, session)
    assert session.labels == {} == Store(path).labels()
    assert notices[-1] == "That category was deleted meanwhile; nothing was labelled."


def test_label_as_menu_lists_the_categories_with_their_numbers(qtbot, open_window, fake_catalog):
    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    select_rows(window, [3])
    item = window.view.selected_ids()[0]
    menu = window.view.item_menu(window.view.model().index(3))
    label_as = next(a.menu() for a in menu.actions() if a.text() == "Label as")
    assert [a.text() for a in label_as.actions()] == ["1 · Red", "2 · Green", "3 · Blue"]
    label_as.actions()[1].trigger()
    assert session.labels[item] == green


def test_ranking_prefers_the_number_then_prefixes_then_recent():
    rows = [CategoryRow(i, name, "#000000", 0, 0, i) for i, name in
            enumerate(["Fruit", "Frozen food", "Garden furniture", "T-Shirts", "Shirts"], start=1)]
    assert [c.name for c in rank_categories("", rows, recent=[4, 2])][:3] == ["T-Shirts", "Frozen food", "Fruit"]
    assert rank_categories("fr", rows)[0].name == "Fruit"
    assert rank_categories("fr", rows, recent=[2])[0].name == "Frozen food"
    assert rank_categories("tshirt", rows)[0].name == "T-Shirts"
    assert rank_categories("5", rows)[0].name == "Shirts"
    assert rank_categories("zzzz", rows) == []


def test_enter_never_accepts_an_item_unlike_every_category(qtbot, open_window, fake_catalog, monkeypatch):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session, model = window.session, window.session.model
    label_examples(qtbot, window, truth, categories)
    wait_idle(qtbot, session)
    assigned = next(model.item_id(r) for r in range(model.rowCount())
                    if model.item_id(r) not in session.labels and model.index(r).data(PredictionRole) in categories)
    predicted = model.index(model.row_of(assigned)).data(PredictionRole)
    unlike = Suggestion(assigned, predicted, 0.07, None, 0.0, 0.9, 1.0)  # what the list said before a refit
    window.show_filter(SHOW_SUGGESTED)
    wait_idle(qtbot, session)
    session.suggestions_ready.emit([unlike])
    window.view.setFocus()
    select_rows(window, [0])
    with monkeypatch.context() as patch:  # now its scores say: nearer to no category than to any
        patch.setattr(model, "scores_of", lambda item_id: [(predicted, 0.07)])
        qtbot.keyClick(window.view, Qt.Key.Key_Return)
    assert assigned not in session.labels
    assert "N: new category from this item" in window.statusBar().currentMessage()
    qtbot.keyClick(window.view, Qt.Key.Key_A)  # its real scores: the badge's category is accepted
    assert session.labels[assigned] == predicted


def test_n_makes_a_new_category_from_the_selection_in_one_undo_step(qtbot, open_window, fake_catalog, monkeypatch):
    path, *_ = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    monkeypatch.setattr(categories_panel, "ask_name", lambda *args: ("Lamps", True))
    window.view.setFocus()
    select_rows(window, [4, 5])
    ids = window.view.selected_ids()
    qtbot.keyClick(window.view, Qt.Key.Key_N)
    wait_idle(qtbot, session)
    lamps = session.categories[-1]
    assert (lamps.name, lamps.position) == ("Lamps", 4)
    assert [session.labels.get(i) for i in ids] == [lamps.id] * 2
    assert Store(path).labels() == session.labels
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert [c.name for c in session.categories] == ["Red", "Green", "Blue"]
    assert session.labels == {} == Store(path).labels()


@pytest.mark.parametrize("variant", ["red", "Ｒｅｄ", "Red\u200e"])  # case, full-width letters, a direction mark
def test_a_variant_of_a_name_is_refused_before_anything_is_pushed(qtbot, open_window, fake_catalog, variant):
    """The store compares names by name_key: a variant the window let through failed on saving
    ("a change could not be saved") and left an undo step that did nothing."""
    path, *_ = fake_catalog
    window = open_window(path)
    with pytest.raises(StoreError, match="'Red' already exists"):
        window.session.create_category(variant)
    assert window.session.undo_stack.count() == 0


def test_undo_puts_back_the_labels_the_command_line_set_meanwhile(qtbot, open_window, fake_catalog):
    """Undo restored what this window had read: a delete and undo lost the CLI's examples of the
    category, and relabel-then-undo wiped the CLI's label of that item."""
    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    session = window.session
    notices = []
    session.notice.connect(notices.append)
    wait_idle(qtbot, session)
    session.label([1, 2], red)
    wait_idle(qtbot, session)
    with Store(path) as cli:  # `protoshelf label Red …` in a terminal meanwhile
        cli.set_labels([10, 11, 12], red)
    session.delete_category(red)
    assert notices[-1] == "Deleted 'Red' and its 2 examples; Edit ▸ Undo (Ctrl+Z) brings them back."
    wait_idle(qtbot, session)
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert sorted(i for i, c in Store(path).labels().items() if c == red) == [1, 2, 10, 11, 12]
    assert {session.labels.get(i) for i in (10, 11, 12)} == {red}
    session.label([10], green)
    wait_idle(qtbot, session)
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert Store(path).labels()[10] == red == session.labels[10]


def test_undoing_a_new_category_leaves_an_example_the_command_line_relabelled_since(qtbot, open_window,
                                                                                   fake_catalog):
    """Undo put back what the examples held before (Red), over the Blue another process gave one."""
    path, (red, green, blue), window, session, problems = watched_window(qtbot, open_window, fake_catalog)
    session.label([1, 2], red)
    wait_idle(qtbot, session)
    session.create_category("Kitchen", None, [1, 2, 3])
    wait_idle(qtbot, session)
    with Store(path) as cli:
        cli.set_labels([2], blue)
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert {i: Store(path).labels().get(i) for i in (1, 2, 3)} == {1: red, 2: blue, 3: None}
    assert {i: session.labels.get(i) for i in (1, 2, 3)} == {1: red, 2: blue, 3: None}
    assert [c.name for c in session.categories] == ["Red", "Green", "Blue"] and not problems
    session.undo_stack.redo()  # the example left alone by the undo is left alone by the redo too
    wait_idle(qtbot, session)
    kitchen = session.categories[-1].id
    assert {i: Store(path).labels().get(i) for i in (1, 2, 3)} == {1: kitchen, 2: blue, 3: kitchen}
    assert {i: session.labels.get(i) for i in (1, 2, 3)} == {1: kitchen, 2: blue, 3: kitchen} and not problems


def test_undoing_a_new_category_again_shows_an_example_it_skipped_as_the_delete_left_it(qtbot, open_window,
                                                                                       fake_catalog):
    """An example left alone by the first undo (relabelled Blue) and by the redo, then given the
    new category by another process: the second undo leaves it to the delete, which unlabels it,
    and the window showed the deleted category on it."""
    path, (red, green, blue), window, session, problems = watched_window(qtbot, open_window, fake_catalog)
    session.create_category("Kitchen", None, [1, 2])
    wait_idle(qtbot, session)
    with Store(path) as cli:
        cli.set_labels([2], blue)
    session.undo_stack.undo()
    session.undo_stack.redo()
    wait_idle(qtbot, session)
    kitchen = session.categories[-1].id
    with Store(path) as cli:
        cli.set_labels([2], kitchen)
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert {i: Store(path).labels().get(i) for i in (1, 2)} == {1: None, 2: None}
    assert {i: session.labels.get(i) for i in (1, 2)} == {1: None, 2: None} and not problems


def test_undoing_a_delete_leaves_an_example_the_command_line_relabelled_since(qtbot, open_window, fake_catalog):
    """Restoring the example over its new label failed on the catalog's one-label-per-item rule:
    "A change could not be saved", the category stayed deleted and its other examples unlabelled."""
    path, (red, green, blue), window, session, problems = watched_window(qtbot, open_window, fake_catalog)
    session.label([1, 2], red)
    wait_idle(qtbot, session)
    session.delete_category(red)
    wait_idle(qtbot, session)
    with Store(path) as cli:
        cli.set_labels([1], blue)
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert {i: Store(path).labels().get(i) for i in (1, 2)} == {1: blue, 2: red}
    assert {i: session.labels.get(i) for i in (1, 2)} == {1: blue, 2: red}
    assert [c.name for c in session.categories] == ["Red", "Green", "Blue"] and not problems


def test_n_then_an_immediate_undo_leaves_the_window_and_the_catalog_agreeing(qtbot, open_window, fake_catalog):
    """The examples were shown as labelled once the create was saved, even when undo came first."""
    path, *_ = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    select_rows(window, [0, 1])
    session.create_category("Kitchen", None, window.view.selected_ids())
    session.undo_stack.undo()  # before the edit lane has answered
    wait_idle(qtbot, session)
    assert session.labels == Store(path).labels() == {}
    assert [c.name for c in session.categories] == ["Red", "Green", "Blue"]


def watched_window(qtbot, open_window, fake_catalog):
    """A window on the fake catalog, idle, with the titles of its problem dialogs recorded."""
    path, truth, categories = fake_catalog
    window = open_window(path)
    wait_idle(qtbot, window.session)
    return path, categories, window, window.session, problem_titles(window.session)


def problem_titles(session) -> list[str]:
    """The titles of the problem dialogs the session raises from now on."""
    titles = []
    session.problem.connect(lambda title, text: titles.append(title))
    return titles


def block_the_edit_lane(session) -> threading.Event:
    """A fit or save still running: edits queue behind it until the event is set."""
    gate = threading.Event()
    session.live.run("a long fit", lambda context, progress: gate.wait(20), kind="block")
    return gate


def test_a_deleted_categorys_key_labels_nothing_while_the_delete_waits_to_be_written(qtbot, open_window,
                                                                                    fake_catalog):
    """The category stayed in the window until its delete was written: its key, pressed meanwhile,
    labelled the item with it, the write then failed, and "A change could not be saved" came up."""
    path, (red, green, blue), window, session, problems = watched_window(qtbot, open_window, fake_catalog)
    gate = block_the_edit_lane(session)
    session.delete_category(red)
    assert panel_numbers(window) == {"Green": "2", "Blue": "3"}
    window.view.setFocus()
    select_rows(window, [0])
    item = window.view.selected_ids()[0]
    qtbot.keyClick(window.view, Qt.Key.Key_1)
    assert "There is no category 1" in window.statusBar().currentMessage()
    session.undo_stack.undo()  # the delete, still not written: Red is back at once
    assert panel_numbers(window) == {"Red": "1", "Green": "2", "Blue": "3"}
    gate.set()
    wait_idle(qtbot, session)
    assert problems == [] and item not in Store(path).labels()
    assert [c.name for c in Store(path).categories()] == ["Red", "Green", "Blue"]


def test_a_second_delete_stays_gone_while_the_first_is_written(qtbot, open_window, fake_catalog):
    """The first delete's re-read of the categories, done once it was written, brought back the
    second, shown deleted but not yet written: its key labelled items again, and that write failed."""
    path, (red, green, blue), window, session, problems = watched_window(qtbot, open_window, fake_catalog)
    session.delete_category(red)
    gate = block_the_edit_lane(session)  # a fit between the two, as the first delete starts one
    session.delete_category(green)
    qtbot.waitUntil(lambda: session.live.pending[0].kind == "block", timeout=10_000)  # the first one written
    assert panel_numbers(window) == {"Blue": "3"}
    gate.set()
    wait_idle(qtbot, session)
    assert panel_numbers(window) == {"Blue": "3"} and problems == []


def test_a_catalog_read_from_before_an_imports_labels_does_not_take_them_off(qtbot, open_window, fake_catalog):
    from protoshelf.gui import jobs

    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    stale = jobs.CatalogState(Store(path).labels(), session.categories, None)  # read while the files came in
    asked_at = session.edits
    with Store(path) as store:  # the import job labels what it brought
        before = store.set_labels([1, 2], red)
    session.show_labelled([1, 2], red, before, asked_at)
    session._caught_up(asked_at, stale)
    assert session.labels[1] == session.labels[2] == red
    wait_idle(qtbot, session)


def test_an_undone_new_category_leaves_the_window_at_once(qtbot, open_window, fake_catalog):
    """It stayed in the panel until the undo was written: its key labelled items with it, and the
    write failed with "A change could not be saved"."""
    path, (red, green, blue), window, session, problems = watched_window(qtbot, open_window, fake_catalog)
    session.create_category("Kitchen")
    wait_idle(qtbot, session)
    gate = block_the_edit_lane(session)
    session.undo_stack.undo()
    assert panel_numbers(window) == {"Red": "1", "Green": "2", "Blue": "3"}
    window.view.setFocus()
    select_rows(window, [0])
    qtbot.keyClick(window.view, Qt.Key.Key_4)
    assert "There is no category 4" in window.statusBar().currentMessage()
    gate.set()
    wait_idle(qtbot, session)
    assert problems == [] and [c.name for c in Store(path).categories()] == ["Red", "Green", "Blue"]


def test_a_rename_is_seen_by_what_follows_before_it_is_written(qtbot, open_window, fake_catalog):
    """The window kept the old name until the rename was written: a new category with the new name
    passed the check and failed on the lane, and a delete then undone brought back the old name."""
    path, (red, green, blue), window, session, problems = watched_window(qtbot, open_window, fake_catalog)
    gate = block_the_edit_lane(session)
    session.rename_category(red, "Crimson")
    assert panel_numbers(window)["Crimson"] == "1"
    with pytest.raises(StoreError, match="'Crimson' already exists"):
        session.create_category("crimson")
    session.delete_category(red)
    session.undo_stack.undo()  # the delete
    gate.set()
    wait_idle(qtbot, session)
    assert problems == [] and [c.name for c in Store(path).categories()] == ["Crimson", "Green", "Blue"]


@pytest.mark.parametrize("change", ["label", "delete", "new category"])
def test_an_undo_before_the_change_is_written_leaves_window_and_catalog_agreeing(qtbot, open_window, fake_catalog,
                                                                              change):
    """Undo restores what the catalog held (a CLI label included); the window must then show that
    too, and an N-then-undo must not wipe the CLI's label."""
    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    session.label([1, 2], red)
    wait_idle(qtbot, session)
    with Store(path) as cli:
        cli.set_labels([10, 11], red)
    gate = block_the_edit_lane(session)
    if change == "label":
        session.label([10], green)
    elif change == "delete":
        session.delete_category(red)
    else:
        session.create_category("Kitchen", None, [10, 12])
    session.undo_stack.undo()  # Ctrl+Z at once
    gate.set()
    wait_idle(qtbot, session)
    assert Store(path).labels() == {1: red, 2: red, 10: red, 11: red}
    assert {i: session.labels.get(i) for i in (1, 2, 10)} == {1: red, 2: red, 10: red}
    if change == "delete":  # the delete met the CLI's item 11 too; the other changes never touched it
        assert session.labels.get(11) == red


def test_the_window_catches_up_with_what_the_command_line_wrote_when_it_is_active_again(qtbot, open_window,
                                                                                      fake_catalog, monkeypatch):
    """`protoshelf label` in a terminal meanwhile: the panel and badges showed none of it."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    session.label([1], green)
    wait_idle(qtbot, session)
    with Store(path) as cli:
        cli.set_labels([10, 11], red)
        cli.set_labels([1], None)
        shoes = cli.create_category("Shoes")
        cli.set_labels([12], shoes)
    monkeypatch.setattr(window, "isActiveWindow", lambda: True)
    QApplication.sendEvent(window, QEvent(QEvent.Type.ActivationChange))  # back from the terminal
    wait_idle(qtbot, session)
    assert session.labels == {10: red, 11: red, 12: shoes} == Store(path).labels()
    assert "Shoes" in [c.name for c in session.categories]
    assert window.panel.list.row_for(shoes) is not None
    assert session.model.index(session.model.row_of(10)).data(LabelRole) == red


def test_a_catch_up_read_before_the_users_own_edit_is_dropped(qtbot, open_window, fake_catalog):
    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    gate = block_the_edit_lane(session)
    with Store(path) as cli:
        cli.set_labels([10], red)
    session.catch_up()
    session.label([10], green)  # the user's change comes after the read was asked for
    gate.set()
    wait_idle(qtbot, session)
    assert session.labels[10] == green == Store(path).labels()[10]
    session.catch_up()  # the next one agrees with the catalog
    wait_idle(qtbot, session)
    assert session.labels == Store(path).labels()
