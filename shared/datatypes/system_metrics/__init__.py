"""system_metrics: CPU, memory, swap, load, uptime, filesystems, network and disk counters."""

from shared.datatypes.spec import Api, DataType
from shared.datatypes.system_metrics import collect
from shared.datatypes.system_metrics.payload import SystemMetrics
from shared.datatypes.system_metrics.table import SystemMetric, rows

TYPE = DataType(
    name="system_metrics", doc=__doc__, payload=SystemMetrics, collect=collect, tables=(SystemMetric,), rows=rows,
    api=Api(path="metrics", latest=False, history=False),
    sample="sshd.txt",
)
