"""Leadership digests (SPEC R12) and record exports (SPEC R13).

Both read the store with SQL aggregation or keyset-paged scans, so their cost follows the
size of a period (digest) or stays in constant memory (export), not the whole history.
"""

from reports.digest import Digest, Period, compute_digest, digest_text
from reports.export import export

__all__ = ["Digest", "Period", "compute_digest", "digest_text", "export"]
