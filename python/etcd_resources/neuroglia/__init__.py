"""Neuroglia integration (``pip install etcd-resources[neuroglia]``).

With ``neuroglia`` installed, the package's own classes are Neuroglia's:
:class:`etcd_resources.ResourceRepository` and
:class:`etcd_resources.EtcdLabWorkerResourceRepository` are Neuroglia ``Repository``
subclasses, traced the way Neuroglia traces repositories (its ``TracedRepositoryMixin``: a span
and a duration metric per operation) and publishing each written entity's domain events
through the mediator after the write succeeded; conflicts raise a class that is both
:class:`etcd_resources.ConflictError` and Neuroglia's ``ResourceConflictError``. (See
``etcd_resources/_neuroglia_bases.py``.) There is one class per name: the names below that are
repositories are the package's own classes.

This subpackage adds the rest of the integration:

- :class:`EtcdResourceWatcher` (``watcher.py``): Neuroglia's ``ResourceWatcherBase`` driven by
  the etcd watch;
- :class:`EtcdCoordinationBackend` (``coordination.py``): Neuroglia's ``CoordinationBackend``
  on etcd leases, for its leader election;
- :class:`NeurogliaStorageBackend` (``storage.py``): Neuroglia's storage protocol (text
  values) on etcd, for Neuroglia's own ``ResourceRepository`` and the service's subclasses;
- :class:`ResourceControllerHost` (``controllers.py``) and :func:`add_resource_controller`
  (``hosting.py``): Neuroglia ``ResourceControllerBase`` subclasses run on the package's
  controller runtime, as a ``HostedService``;
- :func:`add_etcd_resources` and :func:`add_resource_repository`
  (``dependency_injection.py``): the ``EtcdClient`` as a singleton and the repositories as
  scoped services built by factories, as the service's ``main.py`` registered its old
  repository.

```python
builder = WebApplicationBuilder()
add_etcd_resources(builder.services, EtcdSettings.from_app_settings(app_settings),
                   resource_type=LabWorker)
```

Names are imported when first used (the package imports ``_neuroglia_bases`` while it builds its
classes, before anything here could be).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "EtcdCoordinationBackend",
    "EtcdLabInstanceResourceRepository",
    "EtcdLabWorkerResourceRepository",
    "EtcdResourceRepository",
    "EtcdResourceWatcher",
    "NeurogliaConflictError",
    "NeurogliaStorageBackend",
    "ResourceControllerHost",
    "add_etcd_resources",
    "add_resource_controller",
    "add_resource_repository",
]

if TYPE_CHECKING:
    from ..lab_instance_repository import EtcdLabInstanceResourceRepository
    from ..lab_worker_repository import EtcdLabWorkerResourceRepository
    from ..repository import ResourceRepository as EtcdResourceRepository
    from .controllers import ResourceControllerHost
    from .coordination import EtcdCoordinationBackend
    from .dependency_injection import add_etcd_resources, add_resource_repository
    from .hosting import add_resource_controller
    from .storage import NeurogliaStorageBackend
    from .watcher import EtcdResourceWatcher

    NeurogliaConflictError: type

# name -> (module, attribute)
_WHERE = {
    "EtcdCoordinationBackend": (".coordination", "EtcdCoordinationBackend"),
    "EtcdResourceWatcher": (".watcher", "EtcdResourceWatcher"),
    "NeurogliaStorageBackend": (".storage", "NeurogliaStorageBackend"),
    "ResourceControllerHost": (".controllers", "ResourceControllerHost"),
    "add_resource_controller": (".hosting", "add_resource_controller"),
    "add_etcd_resources": (".dependency_injection", "add_etcd_resources"),
    "add_resource_repository": (".dependency_injection", "add_resource_repository"),
    # The package's own classes (the same objects, not subclasses).
    "EtcdLabInstanceResourceRepository": (
        "..lab_instance_repository",
        "EtcdLabInstanceResourceRepository",
    ),
    "EtcdLabWorkerResourceRepository": (
        "..lab_worker_repository",
        "EtcdLabWorkerResourceRepository",
    ),
    "EtcdResourceRepository": ("..repository", "ResourceRepository"),
}


def __getattr__(name: str) -> Any:
    if name == "NeurogliaConflictError":
        from ..errors import use_neuroglia_conflict_error

        value: Any = use_neuroglia_conflict_error()
    elif name in _WHERE:
        module, attribute = _WHERE[name]
        value = getattr(importlib.import_module(module, __name__), attribute)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
