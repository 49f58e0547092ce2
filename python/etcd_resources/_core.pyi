"""Stubs of the native module. Methods stubbed ``async def`` return an awaitable (an asyncio
future), not a coroutine: they start work as soon as they are called."""

import builtins
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar, final

__all__ = [
    "EtcdClient",
    "KvBackend",
    "Ready",
    "RepositoryCore",
    "WatchStream",
    "__version__",
    "_shutdown",
]
__version__: Final[str]

def _shutdown(timeout: float = 2.0) -> bool: ...

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
    ) -> Self: ...
    @property
    def endpoints(self) -> list[str]: ...
    @property
    def closed(self) -> bool: ...
    @property
    def timeout(self) -> float: ...
    async def current_revision(self) -> int: ...
    async def compact(self, revision: int) -> None: ...
    async def put_raw(self, key: bytes | str, value: bytes) -> int: ...
    async def get_raw(self, key: bytes | str) -> bytes | None: ...
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
    async def watch_stream(self, key_prefix: str = "", start_revision: int = 0) -> WatchStream: ...

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
    ) -> Self: ...
    @property
    def prefix(self) -> str: ...
    @property
    def namespaced(self) -> bool: ...
    @property
    def format(self) -> str: ...
    def key(self, name: str, namespace: str | None = None) -> str: ...
    async def get(self, name: str, namespace: str | None = None) -> _Json | None: ...
    async def contains(self, name: str, namespace: str | None = None) -> bool: ...
    async def create(self, resource: Any, *, lease: int = 0) -> _Json: ...
    async def update(self, resource: Any) -> _Json: ...
    async def remove(self, name: str, namespace: str | None = None) -> _Json | None: ...
    @property
    def cached(self) -> bool: ...
    async def list(
        self,
        namespace: str | None = None,
        label_selector: _SelectorArg = None,
        field_selector: _SelectorArg = None,
        *,
        consistent: bool = True,
    ) -> list[_Json]: ...
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
        consistent: bool = True,
    ) -> int: ...
    async def watch_stream(
        self,
        start_revision: int = 0,
        namespace: str | None = None,
        label_selector: _SelectorArg = None,
        field_selector: _SelectorArg = None,
    ) -> WatchStream: ...

_RawChange = tuple[str, str, _Json | None, _Json | None, int]

@final
class WatchStream:
    async def next_batch(self) -> list[_RawChange] | None: ...
    def close(self) -> None: ...

_T = TypeVar("_T")

@final
class Ready(Generic[_T]):
    """An awaitable that is already complete (returned by ``EtcdClient.close``)."""

    def __await__(self) -> Generator[Any, None, _T]: ...
    def __iter__(self) -> Generator[Any, None, _T]: ...
    def __next__(self) -> Any: ...
