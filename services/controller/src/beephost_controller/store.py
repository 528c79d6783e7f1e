"""SqliteStore: all persistent state of the controller, one table a module (tables/)."""

from beephost_controller.tables.backend_logs import BackendLogTable
from beephost_controller.tables.backends import BackendTable
from beephost_controller.tables.environments import EnvironmentTable
from beephost_controller.tables.jobs import JobTable
from beephost_controller.tables.pools import PoolTable
from beephost_controller.tables.runtimes import RuntimeTable


class SqliteStore(
    RuntimeTable, EnvironmentTable, JobTable, BackendTable, BackendLogTable, PoolTable
):
    """All persistent state of the controller: every table on one connection.

    Args:
        path: The database file (created with its directory); ``:memory:`` for tests.
    """
