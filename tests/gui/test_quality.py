"""The quality view, "why this prediction" and likely-wrong examples on a real window."""
from tests.gui.conftest import examples, wait_idle


def test_quality_view_finds_a_mislabelled_example_and_follows_refits(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    dialog = window.open_quality()
    assert "No predictions yet" in dialog.summary.text()

    labels = {i: categories[k] for k in range(3) for i in examples(truth, k, n=4)}
    wrong = examples(truth, 0, n=5)[-1]  # a Red item labelled Blue
    labels[wrong] = categories[2]
    for category in categories:
        with qtbot.waitSignal(session.predictions_changed, timeout=10_000):
            session.label([i for i, c in labels.items() if c == category], category)
    wait_idle(qtbot, session)

    assert dialog.table.rowCount() == 3
    assert {dialog.table.item(r, 0).text() for r in range(3)} == {"Red", "Green", "Blue"}
    assert "expected to be right" in dialog.summary.text()
    flagged = [dialog.likely_wrong.item(r).text() for r in range(dialog.likely_wrong.count())]
    assert any(f"(item {wrong}): labelled Blue" in text and "looks like Red" in text for text in flagged), flagged
    assert dialog.confused.count() >= 1 and "Blue → Red" in dialog.confused.item(0).text()

    with qtbot.waitSignal(session.predictions_changed, timeout=10_000):
        session.label([wrong], categories[0])  # fixed: the flag goes away after the refit
    wait_idle(qtbot, session)
    flagged = [dialog.likely_wrong.item(r).text() for r in range(dialog.likely_wrong.count())]
    assert not any(f"(item {wrong})" in text for text in flagged)


def test_preview_says_which_examples_drove_the_prediction(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    for k, category in enumerate(categories):
        with qtbot.waitSignal(session.predictions_changed, timeout=10_000):
            session.label(examples(truth, k), category)
    wait_idle(qtbot, session)
    row = next(r for r in range(window.view.model().rowCount())
               if window.view.model().item_id(r) not in session.labels)
    item_id = window.view.model().item_id(row)
    dialog = window.open_preview(window.view.model().index(row))
    text = dialog.why.text()
    expected = ["Red", "Green", "Blue"][truth[item_id - 1]]
    assert f"Why <b>{expected}</b>" in text and "nearest examples by image" in text
    dialog.close()
