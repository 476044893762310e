"""Leadership digests (SPEC R12), the monthly report and record exports (SPEC R13).

They read the store with SQL aggregation or keyset-paged scans, so their cost follows the
size of a period (digest, report) or stays in constant memory (export), not the whole history.
"""

from reports.digest import Digest, Period, compute_digest
from reports.export import export

__all__ = ["Digest", "Period", "compute_digest", "export"]
