"""The models and the migrations describe the same schema (migrations are the only way the
schema is made, so a model change without its migration would break a real database)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from store.db import make_engine
from store.models import Base


async def test_migrations_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": False}), Base.metadata))
    finally:
        await engine.dispose()
    assert diff == []
