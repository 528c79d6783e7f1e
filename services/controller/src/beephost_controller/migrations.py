"""The store's schema: numbered scripts, applied in order by SqliteStore.migrate.

Tracked by ``PRAGMA user_version``; each runs in one transaction. A script is only
ever appended: a controller upgraded in place runs the ones its database has not seen.
"""

from collections.abc import Sequence

MIGRATIONS: Sequence[str] = (
    # 1: the initial schema.
    """
    CREATE TABLE runtimes (
        python TEXT PRIMARY KEY,
        image TEXT NOT NULL,
        image_id TEXT NOT NULL,
        version TEXT NOT NULL,
        source TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE environments (
        name TEXT PRIMARY KEY,
        python TEXT NOT NULL,
        requirements TEXT NOT NULL,
        network INTEGER NOT NULL,
        admin INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        lock TEXT,
        image TEXT,
        error TEXT,
        job_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL
    );
    CREATE TABLE job_logs (
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE backends (
        id TEXT PRIMARY KEY,
        environment TEXT NOT NULL,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        container_id TEXT,
        container_name TEXT NOT NULL,
        token TEXT NOT NULL,
        endpoint TEXT,
        options TEXT NOT NULL,
        restarts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        ready_at REAL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX backends_by_environment ON backends(environment);
    """,
    # 2: exit details, the controller's own restarts, admin backends' scoped tokens.
    """
    ALTER TABLE backends ADD COLUMN exit_code INTEGER;
    ALTER TABLE backends ADD COLUMN last_exit TEXT;
    ALTER TABLE backends ADD COLUMN controller_restarts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE backends ADD COLUMN controller_token_sha256 TEXT;
    """,
    # 3: an environment's status is its latest job's (rows.build_state), not a column.
    """
    ALTER TABLE environments DROP COLUMN status;
    """,
    # 4: warm pools: each environment's setting per backend type (backends/pool_policy.py).
    """
    CREATE TABLE pools (
        environment TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,
        type TEXT NOT NULL,
        size INTEGER NOT NULL,
        config TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (environment, type)
    );
    """,
    # 5: the tail of a backend's logs, kept when its container is removed on purpose
    # (an idle timeout, its lifetime, a stop): served once the container is gone.
    """
    CREATE TABLE backend_logs (
        backend_id TEXT PRIMARY KEY REFERENCES backends(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        kept_at REAL NOT NULL
    );
    """,
    # 6: an environment's egress allow-list (JSON; NULL: its `network` decides).
    """
    ALTER TABLE environments ADD COLUMN egress TEXT;
    """,
)
