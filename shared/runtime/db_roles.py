"""Database roles, one per kind of access, created by `infrawatch up` and `infrawatch bootstrap`.

- ``infrawatch_owner`` owns the database, its schema and every table, and runs the migrations;
- ``infrawatch_writer`` writes the projections (every table but those the API manages) and
  reads them; it cannot read API keys;
- ``infrawatch_api`` reads everything and writes only API keys, alert rules and config policies;
- ``infrawatch_reader`` reads everything but API keys (Grafana).

No role but the owner may create objects, and PUBLIC may not even connect. :func:`create_roles`
runs as a superuser; :func:`grant` runs as the owner (or a superuser) after each migration.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from schema.migrate import upgrade

ROLES = {"owner": "infrawatch_owner", "writer": "infrawatch_writer", "api": "infrawatch_api",
         "reader": "infrawatch_reader"}
API_TABLES = ("api_keys", "alert_rules", "config_policies")  # written by the API; every other table is a projection
SECRET_TABLES = ("api_keys",)  # hashes of API keys: the API alone reads them

_TAKE_OWNERSHIP = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
             AND pg_get_userbyid(c.relowner) <> '{owner}'
  LOOP
    EXECUTE format('ALTER %s %I OWNER TO {owner}',
                   CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                  WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.relname);
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype = 'e' AND pg_get_userbyid(t.typowner) <> '{owner}'
  LOOP
    EXECUTE format('ALTER TYPE %I OWNER TO {owner}', r.typname);
  END LOOP;
END $$;
"""

_GRANTS = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
  LOOP
    IF r.relname = ANY($1) THEN
      EXECUTE format('REVOKE ALL ON %I FROM {writer}, {reader}', r.relname);
    ELSE
      EXECUTE format('GRANT SELECT ON %I TO {writer}, {reader}', r.relname);
    END IF;
    EXECUTE format('GRANT SELECT ON %I TO {api}', r.relname);
    IF r.relname = ANY($2) THEN
      EXECUTE format('GRANT INSERT, UPDATE, DELETE ON %I TO {api}', r.relname);
      EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON %I FROM {writer}', r.relname);
    ELSIF r.relkind IN ('r', 'p') AND r.relname <> 'alembic_version' THEN
      EXECUTE format('GRANT INSERT, UPDATE ON %I TO {writer}', r.relname);
    END IF;
  END LOOP;
END $$;
"""


def _text_array(names: tuple[str, ...]) -> str:
    """A SQL text[] literal of ``names``."""
    return "'{" + ",".join(names) + "}'::text[]"


async def create_roles(admin_dsn: str, passwords: dict[str, str]) -> None:
    """As a superuser connected to the infrawatch database: the roles with their passwords
    (``passwords`` by role key: owner, writer, api, reader), the database and schema owned by
    the owner, CONNECT only for the roles, and every existing relation given to the owner."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("SET password_encryption = 'scram-sha-256'")
        for key, role in ROLES.items():
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f'CREATE ROLE "{role}" LOGIN')
            if passwords.get(key):
                stmt = await conn.fetchval("SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
                                           role, passwords[key])
                await conn.execute(stmt)
        owner, db = ROLES["owner"], await conn.fetchval("SELECT current_database()")
        others = ", ".join(ROLES[k] for k in ("writer", "api", "reader"))
        await conn.execute(f'ALTER DATABASE "{db}" OWNER TO {owner}')
        await conn.execute(f"ALTER SCHEMA public OWNER TO {owner}")
        await conn.execute(f'REVOKE ALL ON DATABASE "{db}" FROM PUBLIC')
        await conn.execute(f'GRANT CONNECT ON DATABASE "{db}" TO {others}')
        await conn.execute(f'GRANT TEMPORARY ON DATABASE "{db}" TO {ROLES["writer"]}')  # COPY staging tables
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        await conn.execute(f"GRANT USAGE ON SCHEMA public TO {others}")
        await conn.execute(_TAKE_OWNERSHIP.format(owner=owner))
    finally:
        await conn.close()


async def grant(dsn: str) -> bool:
    """Table privileges of the writer, api and reader roles, for every table the migrations
    made; run as the owner or a superuser. False (nothing done) when the roles do not exist."""
    conn = await asyncpg.connect(dsn)
    try:
        present = await conn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1::text[])",
                                      list(ROLES.values()))
        if present != len(ROLES):
            return False
        sql = _GRANTS.format(**ROLES).replace("$1", _text_array(SECRET_TABLES))
        await conn.execute(sql.replace("$2", _text_array(API_TABLES)))
        await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLES['writer']}, "
                           f"{ROLES['api']}")
        return True
    finally:
        await conn.close()


def passwords_from_env() -> dict[str, str]:
    """The roles' passwords from INFRAWATCH_DB_OWNER_PASSWORD, _WRITER_, _API_, _READER_PASSWORD."""
    import os

    pw = {k: os.environ.get(f"INFRAWATCH_DB_{k.upper()}_PASSWORD", "") for k in ROLES}
    missing = [f"INFRAWATCH_DB_{k.upper()}_PASSWORD" for k, v in pw.items() if not v]
    if missing:
        raise ValueError(f"set {', '.join(missing)}")
    return pw


def bootstrap_database(superuser_url: str, passwords: dict[str, str]) -> None:
    """Roles, schema migrated as the owner, grants: what `infrawatch bootstrap` does to the database."""
    asyncio.run(create_roles(superuser_url, passwords))
    owner_url = role_url(superuser_url, ROLES["owner"], passwords["owner"])
    upgrade(owner_url)
    asyncio.run(grant(owner_url))


def role_url(url: str, role: str, password: str) -> str:
    """``url`` logged in as ``role`` with ``password``."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"))
