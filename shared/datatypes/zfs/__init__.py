"""zfs: pool health, vdev state and error counters, scrub state and last scrub; datasets."""

from shared.datatypes.spec import Api, DataType
from shared.datatypes.zfs import collect
from shared.datatypes.zfs.payload import Zfs
from shared.datatypes.zfs.table import ZfsPool, rows

TYPE = DataType(
    name="zfs", doc=__doc__, payload=Zfs, collect=collect, tables=(ZfsPool,), rows=rows,
    api=Api(path="zfs", key="pool", key_doc="one pool, e.g. tank"),
    sample="proxmox-openzfs-2.2.txt",
)
