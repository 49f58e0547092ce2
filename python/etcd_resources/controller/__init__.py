"""Reconcile loops on the watch and the shared cache: ``Controller(repository, reconcile)``
runs ``reconcile(resource) -> Action`` for every resource under the repository's prefix, again
after each change that matters, with the queue in Rust (see docs/controller.md)."""

from .action import Action
from .changes import ChangePredicate
from .finalizer import finalizer
from .owners import owner_reference
from .relations import Mapper
from .runtime import Controller, ControllerStats, Reconcile
from .sharding import Sharding
from .stopping import stopping

__all__ = [
    "Action",
    "ChangePredicate",
    "Controller",
    "ControllerStats",
    "Mapper",
    "Reconcile",
    "Sharding",
    "finalizer",
    "owner_reference",
    "stopping",
]
