"""inventory: OS release, kernel, architecture, hostname, CPU, memory, installed packages (dpkg,"""

from shared.datatypes.inventory import collect
from shared.datatypes.inventory.payload import Inventory
from shared.datatypes.inventory.table import InventorySnapshot, rows
from shared.datatypes.spec import Api, DataType

TYPE = DataType(
    name="inventory", doc=__doc__, payload=Inventory, collect=collect, tables=(InventorySnapshot,), rows=rows,
    api=Api(path="inventory"),
    sample="debian12-this-host.txt",
)
