"""mounts: every mounted filesystem with its source, type, options and whether it is read-only."""

from shared.datatypes.mounts import collect
from shared.datatypes.mounts.payload import Mounts
from shared.datatypes.mounts.table import MountRow, rows
from shared.datatypes.spec import Api, DataType

TYPE = DataType(
    name="mounts", doc=__doc__, payload=Mounts, collect=collect, tables=(MountRow,), rows=rows,
    api=Api(path="mounts", key="mount_point"),
    sample="util-linux-libmount.txt",
)
