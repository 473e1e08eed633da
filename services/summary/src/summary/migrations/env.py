from alembic import context

from medstation_platform.migrations import run_migrations_online

run_migrations_online(context.config.get_main_option("sqlalchemy.url") or "")
