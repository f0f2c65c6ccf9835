"""network: interfaces, addresses, state, MTU and counters from iproute2's JSON output."""

from shared.datatypes.network import collect
from shared.datatypes.network.payload import Network
from shared.datatypes.network.table import NetworkInterface, rows
from shared.datatypes.spec import Api, DataType

TYPE = DataType(
    name="network", doc=__doc__, payload=Network, collect=collect, tables=(NetworkInterface,), rows=rows,
    api=Api(path="network", key="interface", key_doc="one interface, e.g. eth0", key_max_length=64),
    sample="debian12-iproute2-6.1.txt",
)
