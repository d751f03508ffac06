from alembic import context

from protoshelf.core.schema import Base

# One transaction for the whole upgrade, begun with BEGIN IMMEDIATE (the store's "immediate"
# option): the write lock is taken before the current version is read, so processes opening a new
# or old catalog at the same moment wait their turn, and the later ones find it already upgraded.
#
# Foreign keys are off during migrations, as SQLite's procedure for schema changes asks: a
# migration that rebuilds a table drops the old one, and with foreign keys on that drop would
# cascade into every label, vector and prediction. The pragma is a no-op inside a transaction, so
# it is set on the bare connection before BEGIN; `PRAGMA foreign_key_check` must come back empty
# before the transaction commits.
engine = context.config.attributes["engine"].execution_options(immediate=True)
with engine.connect() as connection:
    raw = connection.connection.driver_connection
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        with connection.begin():
            context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                              transactional_ddl=True)
            with context.begin_transaction():
                context.run_migrations()
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the schema upgrade would leave {len(broken)} rows pointing at nothing, "
                                   f"e.g. {broken[0]}; the catalog was left as it was")
    finally:
        raw.execute("PRAGMA foreign_keys = ON")
