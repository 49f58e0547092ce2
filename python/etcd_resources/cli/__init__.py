"""``etcd-resources``, the command line (``pip install etcd-resources[cli]``): kubectl's verbs
and flags over resources kept in etcd, built on Click and Rich, calling only the package's
public API."""

from .app import cli, main

__all__ = ["cli", "main"]
