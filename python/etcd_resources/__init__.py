"""etcd-resources: Kubernetes-style resources in etcd for asyncio Python services.

>>> from etcd_resources import EtcdClient, ResourceRepository
>>> client = EtcdClient("memory://")          # or ["http://127.0.0.1:2379", ...]
>>> repo = ResourceRepository(client, "/lab-workers/")
"""

import atexit

from ._core import EtcdClient, __version__, _shutdown
from .backend import EtcdStorageBackend
from .config import EtcdSettings
from .errors import (
    AlreadyExistsError,
    ClosedError,
    ConflictError,
    EtcdResourcesError,
    EtcdTimeoutError,
    ExpiredError,
    FencedError,
    ForkedError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidSelectorError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    SerializationError,
    TooLargeError,
    UnavailableError,
    WatchFellBehindError,
)
from .lab_instance_repository import EtcdLabInstanceResourceRepository
from .lab_worker_repository import EtcdLabWorkerResourceRepository
from .lab_workers import LabWorker, LabWorkerPhase, LabWorkerSpec, LabWorkerStatus
from .readonly import ReadOnlyDict, ReadOnlyList, thaw
from .repository import ResourcePage, ResourceRepository, UnreadableDocument
from .typed import from_document
from .watching import EventType, ResourceEvent, WatchEvent, WatchHandle

# Close every client and let the runtime go quiet before the interpreter finalizes.
atexit.register(_shutdown)

__all__ = [
    "AlreadyExistsError",
    "ClosedError",
    "ConflictError",
    "EtcdClient",
    "EtcdLabInstanceResourceRepository",
    "EtcdLabWorkerResourceRepository",
    "EtcdResourcesError",
    "EtcdSettings",
    "EtcdStorageBackend",
    "EtcdTimeoutError",
    "EventType",
    "ExpiredError",
    "FencedError",
    "ForkedError",
    "InvalidArgumentError",
    "InvalidNameError",
    "InvalidSelectorError",
    "LabWorker",
    "LabWorkerPhase",
    "LabWorkerSpec",
    "LabWorkerStatus",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "ReadOnlyDict",
    "ReadOnlyList",
    "ResourceEvent",
    "ResourcePage",
    "ResourceRepository",
    "SerializationError",
    "TooLargeError",
    "UnavailableError",
    "UnreadableDocument",
    "WatchEvent",
    "WatchFellBehindError",
    "WatchHandle",
    "__version__",
    "from_document",
    "thaw",
]
