"""Category numbers are stable: a deletion leaves the others' numbers, a reorder swaps only the moved ones."""
from __future__ import annotations

import pytest
from alembic import command

from conftest import raw_sql
from protoshelf.core.migrations import alembic_config, head_revision
from protoshelf.core.store import Store, StoreError, make_engine


def numbers(store: Store) -> dict[str, int]:
    return {c.name: c.position for c in store.categories()}


def test_delete_keeps_numbers_and_restore_brings_its_number_back(store):
    ids = [store.create_category(n) for n in ("Red", "Green", "Blue")]
    assert numbers(store) == {"Red": 1, "Green": 2, "Blue": 3}
    store.delete_category(ids[0])
    assert numbers(store) == {"Green": 2, "Blue": 3}
    store.create_category("Black")
    assert numbers(store) == {"Green": 2, "Blue": 3, "Black": 4}
    store.restore_category(ids[0], "Red", "#ff0000", {}, position=1)
    assert [c.name for c in store.categories()] == ["Red", "Green", "Blue", "Black"]


def test_reorder_moves_rows_on_the_numbers_they_hold(store):
    red, green, blue = (store.create_category(n) for n in ("Red", "Green", "Blue"))
    store.delete_category(green)
    black = store.create_category("Black")
    store.reorder_categories([black, red, blue])
    assert numbers(store) == {"Black": 1, "Red": 3, "Blue": 4}
    with pytest.raises(StoreError):
        store.reorder_categories([green, red])


def test_names_differing_only_in_case_are_one_category(store):
    fruit = store.create_category("Fruit")
    with pytest.raises(StoreError, match="'Fruit' already exists"):
        store.create_category("fruit")
    other = store.create_category("Vegetables")
    with pytest.raises(StoreError):
        store.rename_category(other, "FRUIT")
    store.rename_category(fruit, "fruit")  # its own name in another case is fine
    assert store.category_id("FRUIT") == fruit == store.ensure_category("Fruit")


def test_an_old_catalog_gets_numbers_in_the_order_it_showed(tmp_path):
    path = tmp_path / "old.sqlite"
    with Store(path) as store:
        for name in ("A", "B", "C"):
            store.create_category(name)
    engine = make_engine(path)
    command.downgrade(alembic_config(engine), "0004")
    engine.dispose()
    with Store(path) as store:  # opening upgrades it
        assert numbers(store) == {"A": 1, "B": 2, "C": 3}
    with raw_sql(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)


def test_categories_a_feed_made_with_number_0_get_the_next_numbers(tmp_path):
    """Feeds created their categories at position 0 before 5ea24de; migration 0010 numbers them."""
    path = tmp_path / "feed.sqlite"
    with Store(path) as store:
        for name in ("Hats", "Fruit", "Mugs"):
            store.create_category(name)
    with raw_sql(path) as db:
        db.execute("UPDATE categories SET position = 0 WHERE name IN ('Fruit', 'Mugs')")
    engine = make_engine(path)
    command.downgrade(alembic_config(engine), "0009")
    engine.dispose()
    with Store(path) as store:  # opening upgrades it
        assert numbers(store) == {"Hats": 1, "Fruit": 2, "Mugs": 3}


def test_a_deleted_categorys_id_never_goes_to_a_new_one(store):
    """SQLite gave a new row the highest id + 1: a drop import or an undo that named the deleted
    category reached the new one instead."""
    store.create_category("Toys")
    games = store.create_category("Games")
    store.delete_category(games)
    assert store.create_category("Kitchen knives") != games


def test_an_old_catalog_keeps_its_ids_and_labels_and_stops_reusing_them(tmp_path):
    from conftest import write_image
    from protoshelf.core.importer import import_images

    path = tmp_path / "old.sqlite"
    write_image(tmp_path / "pictures" / "a.png", (200, 30, 30))
    with Store(path) as store:
        (item,) = import_images(store, [str(tmp_path / "pictures")]).item_ids
        hats, fruit = store.create_category("Hats"), store.create_category("Fruit")
        store.set_labels([item], fruit)
    engine = make_engine(path)
    command.downgrade(alembic_config(engine), "0010")
    engine.dispose()
    with Store(path) as store:  # opening upgrades it
        assert {c.name: c.id for c in store.categories()} == {"Hats": hats, "Fruit": fruit}
        assert store.labels() == {item: fruit}
        store.delete_category(fruit)
        assert store.create_category("Mugs") != fruit
