"""Publish: versioned, read-only snapshots of the marts with an atomic ``current`` switch.

``publish_version`` is what the DAG's publish task calls; ``python -m publish`` lists versions, rolls
back and opens a read-only SQL shell for analysts.
"""

from publish.publisher import (
    Manifest,
    publish_version,
    record_intended_publication,
    record_publication,
    rollback,
    version_name,
)

__all__ = [
    "Manifest",
    "publish_version",
    "record_intended_publication",
    "record_publication",
    "rollback",
    "version_name",
]
