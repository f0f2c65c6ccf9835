"""systemd_services: service units with their load, active and sub state; failed units; restarts."""

from shared.datatypes.spec import Api, DataType
from shared.datatypes.systemd_services import collect
from shared.datatypes.systemd_services.payload import SystemdServices
from shared.datatypes.systemd_services.table import SystemdSnapshot, rows

TYPE = DataType(
    name="systemd_services", doc=__doc__, payload=SystemdServices, collect=collect, tables=(SystemdSnapshot,), rows=rows,
    api=Api(path="services"),
    sample="debian12-server.txt",
)
