"""containers: every container with its state, health, restarts, ports and resource use."""

from shared.datatypes.containers import collect
from shared.datatypes.containers.payload import Containers
from shared.datatypes.containers.table import ContainerSnapshot, rows
from shared.datatypes.spec import Api, DataType

TYPE = DataType(
    name="containers", doc=__doc__, payload=Containers, collect=collect, tables=(ContainerSnapshot,), rows=rows,
    api=Api(path="containers", history=False),
    sample="docker-24-compose.txt",
)
