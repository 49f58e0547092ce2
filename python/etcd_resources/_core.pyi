"""Stubs of the native module. Methods stubbed ``async def`` return an awaitable (an asyncio
future), not a coroutine: they start work as soon as they are called."""

import builtins
import contextvars
import os
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar, final

__all__ = [
    "ControllerCore",
    "EtcdClient",
    "KvBackend",
    "Lease",
    "ListStream",
    "Ready",
    "RepositoryCore",
    "TextBackend",
    "TypePlan",
    "WatchStream",
    "__version__",
    "_shutdown",
    "_use_fence_var",
    "flush_logs",
    "normalize_prefix",
    "shard_of",
]
__version__: Final[str]

def _shutdown(timeout: float = 2.0) -> bool: ...
def flush_logs() -> None: ...
def _use_fence_var(var: contextvars.ContextVar[tuple[str, int] | None]) -> None: ...
def normalize_prefix(prefix: str) -> str: ...

_Json = dict[str, Any]
_SelectorArg = str | Mapping[str, Any] | None

@final
class EtcdClient:
    def __new__(
        cls,
        endpoints: str | list[str] | None = None,
        *,
        timeout: float = 5.0,
        connect_timeout: float | None = None,
        username: str | None = None,
        password: str | None = None,
        max_document_bytes: int = 1572864,
        retries: int = 2,
        breaker_threshold: int = 5,
        breaker_reset: float = 2.0,
        election_timeout: float = 1.0,
        ca_cert: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        tls_domain: str | None = None,
    ) -> Self: ...
    @property
    def endpoints(self) -> list[str]: ...
    @property
    def closed(self) -> bool: ...
    @property
    def timeout(self) -> float: ...
    async def current_revision(self, *, prefix: str | None = None) -> int: ...
    def metrics(self) -> dict[str, dict[str, Any]]: ...
    def unreadable_stats(self) -> dict[str, int]: ...
    async def members(self) -> list[dict[str, Any]]: ...
    async def compacted_revision(self, prefix: str) -> int: ...
    def endpoint_health(self) -> dict[str, dict[str, Any]]: ...
    def watch_stats(self) -> dict[str, int]: ...
    async def compact(self, revision: int) -> None: ...
    async def put_raw(self, key: bytes | str, value: bytes) -> int: ...
    async def grant_lease(self, ttl: int, *, keep_alive: bool = True) -> Lease: ...
    async def keep_alive_once(self, id: int) -> int: ...
    async def revoke_lease(self, id: int) -> None: ...
    async def get_kv(self, key: bytes | str) -> tuple[bytes, int, int] | None: ...
    async def create_raw(self, key: bytes | str, value: bytes, *, lease: int = 0) -> int: ...
    async def delete_raw(self, key: bytes | str, *, expected: int | None = None) -> bool: ...
    async def get_raw(self, key: bytes | str) -> bytes | None: ...
    async def list_raw(
        self, prefix: bytes | str
    ) -> tuple[int, list[tuple[str, bytes, int, int]]]: ...
    def close(self) -> Ready[None]: ...
    def __aenter__(self) -> Ready[Self]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
        /,
    ) -> Ready[None]: ...

@final
class KvBackend:
    def __new__(cls, client: EtcdClient, prefix: str, *, format: str = "json") -> Self: ...
    @property
    def prefix(self) -> str: ...
    async def exists(self, name: str) -> bool: ...
    async def get(self, name: str) -> _Json | None: ...
    async def set(self, name: str, value: Any) -> int: ...
    async def delete(self, name: str) -> bool: ...
    async def keys(self, pattern: str = "") -> list[str]: ...
    async def list_with_labels(self, selector: _SelectorArg = None) -> list[_Json]: ...
    async def compare_and_swap(
        self, name: str, expected_version: str | int, new_value: Any
    ) -> bool: ...
    async def watch_stream(
        self,
        key_prefix: str = "",
        start_revision: int = 0,
        *,
        max_backlog: int | None = None,
        readonly: bool = False,
    ) -> WatchStream: ...

@final
class TextBackend:
    """Text at ``prefix + key``: Neuroglia's storage protocol (see ``NeurogliaStorageBackend``).
    Each method returns an awaitable, not a coroutine."""

    def __new__(cls, client: EtcdClient, prefix: str) -> Self: ...
    @property
    def prefix(self) -> str: ...
    async def exists(self, key: str) -> bool: ...
    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, text: str) -> int: ...
    async def delete(self, key: str) -> bool: ...
    async def keys(self, pattern: str) -> list[str]: ...

@final
class RepositoryCore:
    def __new__(
        cls,
        client: EtcdClient,
        prefix: str,
        *,
        namespaced: bool = False,
        format: str = "json",
        default_namespace: str = "default",
        cache_fields: builtins.list[str] | None = None,
        type_plan: TypePlan | None = None,
    ) -> Self: ...
    @property
    def prefix(self) -> str: ...
    @property
    def namespaced(self) -> bool: ...
    @property
    def format(self) -> str: ...
    def as_dicts(self) -> RepositoryCore:
        """The same repository (its cache included), reading dicts."""
    def note_seen(self, key: str, revision: int) -> None:
        """This client saw ``key`` at ``revision``: session reads of the cache wait for it."""
    def key(self, name: str, namespace: str | None = None) -> str: ...
    async def get(self, name: str, namespace: str | None = None) -> Any | None: ...
    async def contains(self, name: str, namespace: str | None = None) -> bool: ...
    async def create(self, resource: Any, *, lease: int = 0) -> _Json: ...
    async def update(self, resource: Any) -> _Json: ...
    async def remove(
        self,
        name: str,
        namespace: str | None = None,
        *,
        delete_unreadable: bool = False,
        expected_version: str | int | None = None,
    ) -> _Json | None: ...
    async def unreadable(self) -> list[tuple[str, int, str]]: ...
    @property
    def cached(self) -> bool: ...
    async def list(
        self,
        namespace: str | None = None,
        label_selector: _SelectorArg = None,
        field_selector: _SelectorArg = None,
        *,
        consistent: bool | None = None,
        streamed: bool = False,
    ) -> tuple[list[_Json], ListStream | None]: ...
    async def list_page(
        self,
        namespace: str | None = None,
        label_selector: _SelectorArg = None,
        field_selector: _SelectorArg = None,
        *,
        limit: int = 500,
        continue_token: str | None = None,
    ) -> tuple[builtins.list[_Json], str, str | None]: ...
    async def count(
        self,
        namespace: str | None = None,
        label_selector: _SelectorArg = None,
        field_selector: _SelectorArg = None,
        *,
        consistent: bool | None = None,
    ) -> int: ...
    async def watch_stream(
        self,
        start_revision: int = 0,
        namespace: str | None = None,
        label_selector: _SelectorArg = None,
        field_selector: _SelectorArg = None,
        *,
        typed: bool = True,
        max_backlog: int | None = None,
        readonly: bool = False,
    ) -> WatchStream: ...

@final
class TypePlan:
    """How documents become instances of one class (made by ``typed.plan_for``)."""

    def __new__(cls, classes: builtins.list[Any]) -> Self: ...
    def build(self, doc: Any) -> Any: ...

_RawChange = tuple[str, str, _Json | None, _Json | None, int]

@final
class ListStream:
    async def next(self) -> list[_Json] | None: ...

@final
class WatchStream:
    async def next_batch(self) -> list[_RawChange] | None: ...
    def close(self) -> None: ...

@final
class Lease:
    @property
    def id(self) -> int: ...
    @property
    def ttl(self) -> int: ...
    @property
    def lost(self) -> bool: ...
    def cancel(self) -> None: ...
    async def revoke(self) -> None: ...
    async def wait_lost(self) -> BaseException: ...

_T = TypeVar("_T")

@final
class Ready(Generic[_T]):
    """An awaitable that is already complete (returned by ``EtcdClient.close``)."""

    def __await__(self) -> Generator[Any, None, _T]: ...
    def __iter__(self) -> Generator[Any, None, _T]: ...
    def __next__(self) -> Any: ...

def shard_of(key: str, count: int) -> int:
    """The shard of ``key`` among ``count`` (FNV-1a, the same in every process)."""

@final
class ControllerCore:
    """The queue and feed of one controller on one repository's prefix."""

    def __new__(
        cls,
        repository: RepositoryCore,
        *,
        max_concurrency: int = 8,
        backoff_base: float = 0.05,
        backoff_max: float = 300.0,
        debounce: float = 0.0,
        debounce_max: float = 0.0,
        aging: float = 1.0,
        predicates: builtins.list[str] = ...,
    ) -> Self: ...
    async def start(self) -> None:
        """Load the cache, queue every key, follow changes (returns an awaitable)."""
    async def next(self) -> tuple[str, Any, int, str, BaseException | None, float]:
        """The next ``(key, resource, failures, priority, error, waited)`` to run (returns an
        awaitable)."""
    async def next_batch(
        self, max: int = 64
    ) -> builtins.list[tuple[str, Any, int, str, BaseException | None, float]]:
        """The next due keys, up to ``max`` (returns an awaitable)."""
    def trigger(self, keys: builtins.list[str]) -> None:
        """Queue keys of the prefix as live changes (something they relate to changed)."""
    def relist(self) -> None:
        """Queue every key of the cache again (a related feed fell behind)."""
    def finish(self, key: str, outcome: str, after: float | None = None) -> None: ...
    async def record(
        self,
        key: str,
        *,
        generation: int | None,
        ok: bool,
        reason: str,
        message: str | None = None,
    ) -> tuple[str, Any]:
        """Record a reconcile in the status (returns an awaitable)."""
    async def set_finalizer(self, key: str, name: str, present: bool) -> tuple[str, Any]:
        """Add or remove a finalizer (returns an awaitable)."""
    async def write_status(self, key: str, status: Any) -> tuple[str, Any]:
        """Put a status onto the stored resource (returns an awaitable)."""
    def set_shards(self, count: int, held: builtins.list[int]) -> None:
        """Run only the keys of the ``held`` shards among ``count``."""
    def stop(self) -> None: ...
    def stats(self) -> dict[str, Any]: ...
