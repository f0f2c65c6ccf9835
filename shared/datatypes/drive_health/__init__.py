"""drive_health: SMART data of every physical drive (ATA, NVMe, SCSI) from smartctl's JSON."""

from shared.datatypes.drive_health import collect
from shared.datatypes.drive_health.payload import DriveHealth
from shared.datatypes.drive_health.table import DriveHealth as DriveHealthTable, rows
from shared.datatypes.spec import Api, DataType

TYPE = DataType(
    name="drive_health", doc=__doc__, payload=DriveHealth, collect=collect, tables=(DriveHealthTable,), rows=rows,
    api=Api(path="drives", history=False),
    sample="home-ata-nvme.txt",
)
