"""Persistence: SQLAlchemy tables, repositories (the only home of SQL) and Alembic."""
