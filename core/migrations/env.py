from alembic import context

from protoshelf.core.schema import Base

# One transaction for the whole upgrade, begun with BEGIN IMMEDIATE (the store's "immediate"
# option): the write lock is taken before the current version is read, so processes opening a new
# or old catalog at the same moment wait their turn, and the later ones find it already upgraded.
engine = context.config.attributes["engine"].execution_options(immediate=True)
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                      transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
