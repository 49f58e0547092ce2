"""Kubernetes' label selector grammar through ``list_async``, on etcd and memory://.

The cases are Kubernetes' own parser tests (``k8s.io/apimachinery/pkg/labels/
selector_test.go``: TestSelectorParse, TestLexer, TestLexerSequence, TestParserLookahead,
TestParseOperator, TestRequirementConstructor, TestToString, TestSetSelectorParser,
TestSelectorMatches, TestRequirementSelectorMatching, TestSetMatches), written as selector
strings; then the numeric comparisons fields have here and Kubernetes' fields do not.
"""

from __future__ import annotations

from typing import Any

import pytest

from etcd_resources import EtcdClient, InvalidSelectorError, ResourceRepository

VALID = [
    # TestSelectorParse
    "x=a,y=b,z=c",
    "",
    "x!=a,y=b",
    "x=",
    "x= ",
    "x=,z= ",
    "x= ,z= ",
    "!x",
    "x>1",
    "x>1,z<5",
    # TestLexer: the words alone are keys
    "notin",
    "in",
    # TestLexerSequence, TestParserLookahead
    "key in ( value )",
    "key notin ( value )",
    "key in ( value1, value2 )",
    "key",
    "!key",
    "x in (),y",
    "key>2",
    "key<1",
    # TestParseOperator
    "x in (a)",
    "x=a",
    "x==a",
    "x<1",
    "x notin (a)",
    "x!=a",
    # TestRequirementConstructor
    "x3 in (foo)",
    "x4 notin (foo)",
    "x6",
    "!x7",
    "x9 in (bar)",
    "1foo in (bar)",
    "1234 in (bar)",
    "x11>1",
    "x12<6",
    # TestToString
    "x in (abc,def),y notin (jkl),z",
    "x notin (abc,def),y!=jkl,!z",
    "x notin (abc),y in (jkl,mno),z notin ()",
    "x=abc,y==jkl,z!=a,z",
    "x>2,y<8,z",
    # TestSetSelectorParser
    "\rx",
    "this-is-a-dns.domain.com/key-with-dash",
    "this-is-another-dns.domain.com/key-with-dash in (so,what)",
    "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
    "foo  in\t (abc)",
    "x notin\n (abc)",
    "x  notin\t\t\t(abc,def)",
    "x in (abc,def)",
    "x in (abc,)",
    "x in ()",
    "x notin (abc,,def),bar,z in (),w",
    "x,y in (a)",
    "x<7",
    "x=a,y!=b",
    "x=a,y!=b,z in (h,i,j)",
    "x notin ( )",
    "x notin (, a)",
    "a ",
    "a in (x,y,notin, z,in)",
]

INVALID = [
    # TestSelectorParse
    "x=a||y=b",
    "x==a==b",
    "!x=a",
    "x<a",
    # TestLexer
    ",",
    "=",
    "==",
    ">",
    "<",
    "!",
    "!=",
    "(",
    ")",
    "~",
    "||",
    # TestLexerSequence, TestParserLookahead
    "()",
    "== != (), = notin",
    # TestParseOperator
    "x ! a",
    "x exists a",
    "x ( a",
    # TestRequirementConstructor
    "x13>",
    "x14>bar",
    "x15<bar",
    "foo>bar",
    "barz<blah",
    "a" * 254,
    "x16=" + "a" * 254,
    "x17=a b",
    "x18 unsupportedOp foo",
    # TestToString
    "x in (abc,def),",
    # TestSetSelectorParser
    "x,,y",
    ",x,y",
    "x nott in (y)",
    "a in (xyz),",
    "a in (xyz)b notin ()",
    "a in (xyz abc)",
    "a notin(",
    "a (",
    # `>`/`<` take what strconv.ParseInt reads, and a valid label value
    "x>1.5",
    "x>-1",
    "x>9223372036854775808",
    "x>=1",
]

# (selector, labels, matches)
MATCHING: list[tuple[str, dict[str, str], bool]] = [
    # TestSelectorMatches
    ("", {"x": "y"}, True),
    ("x=y", {"x": "y"}, True),
    ("x=y,z=w", {"x": "y", "z": "w"}, True),
    ("x!=y,z!=w", {"x": "z", "z": "a"}, True),
    ("notin=in", {"notin": "in"}, True),
    ("x", {"x": "z"}, True),
    ("!x", {"y": "z"}, True),
    ("x>1", {"x": "2"}, True),
    ("x<1", {"x": "0"}, True),
    ("x=z", {}, False),
    ("x=y", {"x": "z"}, False),
    ("x=y,z=w", {"x": "w", "z": "w"}, False),
    ("x!=y,z!=w", {"x": "z", "z": "w"}, False),
    ("x", {"y": "z"}, False),
    ("!x", {"x": "z"}, False),
    ("x>1", {"x": "0"}, False),
    ("x<1", {"x": "2"}, False),
    ("foo=bar", {"foo": "bar", "baz": "blah"}, True),
    ("baz=blah", {"foo": "bar", "baz": "blah"}, True),
    ("foo=bar,baz=blah", {"foo": "bar", "baz": "blah"}, True),
    ("foo=blah", {"foo": "bar", "baz": "blah"}, False),
    ("baz=bar", {"foo": "bar", "baz": "blah"}, False),
    ("foo=bar,foobar=bar,baz=blah", {"foo": "bar", "baz": "blah"}, False),
    # TestRequirementSelectorMatching
    ("x in (foo),y notin (alpha)", {"x": "foo", "y": "baz"}, True),
    ("x in (foo),y in (alpha)", {"x": "foo", "y": "baz"}, False),
    ("x notin (),y", {"y": ""}, True),
    ("!x,y", {"y": ""}, True),
    ("x notin (),!y", {"y": ""}, False),
    ("x in ()", {"y": "baz"}, False),
    ("z>1", {"z": "2"}, True),
    ("z>1", {"z": "v2"}, False),
    # `>`/`<` read the label as strconv.ParseInt does; absent or not an integer: no match
    ("x<10", {"x": "-2"}, True),
    ("x<10", {"x": "+9"}, True),
    ("x>9223372036854775806", {"x": "9223372036854775807"}, True),
    ("x>1", {"y": "5"}, False),
    ("x<100", {"x": "1.5"}, False),
    ("x<100", {"x": "1e3"}, False),
    ("x<100", {"x": "99999999999999999999"}, False),
    ("x>0", {"x": "two"}, False),
    ("x>1,x<3", {"x": "2"}, True),
    ("x>1,x<2", {"x": "2"}, False),
]

# TestSetMatches: a dict is Kubernetes' SelectorFromSet, equality on each pair.
SET_MATCHES = [{}, {"foo": "bar"}, {"baz": "blah"}, {"foo": "bar", "baz": "blah"}]


def names(items: list[dict[str, Any]]) -> list[str]:
    return [d["metadata"]["name"] for d in items]


async def test_kubernetes_valid_selectors_parse(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    await repo.add_async({"metadata": {"name": "r", "labels": {"x": "1"}}, "spec": {}})
    for selector in VALID:
        listed = await repo.list_async(label_selector=selector)
        assert await repo.count_async(label_selector=selector) == len(listed), selector
    assert names(await repo.list_async(label_selector="")) == ["r"]


async def test_kubernetes_invalid_selectors_raise(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    for selector in INVALID:
        with pytest.raises(InvalidSelectorError) as info:
            await repo.list_async(label_selector=selector)
        assert 0 <= info.value.position <= len(selector), selector
        assert info.value.selector == selector
        with pytest.raises(InvalidSelectorError):
            await repo.count_async(label_selector=selector)


@pytest.mark.parametrize(
    ("selector", "position", "expected"),
    [
        ("x<a", 2, "integer"),
        ("x>1.5", 2, "integer"),
        ("x>-1", 2, "integer"),
        ("x > ", 4, "integer"),
        ("x>1 2", 4, "','"),
        ("a=b,c>d", 6, "integer"),
    ],
)
async def test_comparison_errors_point_at_the_value(
    client: EtcdClient, prefix: str, selector: str, position: int, expected: str
) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    with pytest.raises(InvalidSelectorError) as info:
        await repo.list_async(label_selector=selector)
    assert info.value.position == position
    assert expected in info.value.expected


@pytest.mark.parametrize("cache", [False, True], ids=["etcd-read", "cached"])
async def test_kubernetes_matching_cases(client: EtcdClient, prefix: str, cache: bool) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix, cache=cache)
    label_sets = [labels for _, labels, _ in MATCHING] + SET_MATCHES
    by_labels: dict[frozenset[tuple[str, str]], str] = {}
    for labels in label_sets:
        key = frozenset(labels.items())
        if key not in by_labels:
            by_labels[key] = f"r{len(by_labels):02}"
            await repo.add_async(
                {"metadata": {"name": by_labels[key], "labels": labels}, "spec": {}}
            )
    for selector, labels, want in MATCHING:
        found = names(await repo.list_async(label_selector=selector))
        name = by_labels[frozenset(labels.items())]
        assert (name in found) == want, f"{selector!r} on {labels}: {found}"
        assert await repo.count_async(label_selector=selector) == len(found), selector
    everything = by_labels[frozenset({"foo": "bar", "baz": "blah"}.items())]
    for pairs in SET_MATCHES:
        assert everything in names(await repo.list_async(label_selector=pairs)), pairs


# -- numeric comparisons on fields --------------------------------------------------------------

WORKERS: dict[str, dict[str, Any]] = {
    "w0": {"active_lab_count": 0, "capacity": {"allocated_cpu_cores": 2}},
    "w1": {"active_lab_count": 19, "capacity": {"allocated_cpu_cores": 8}},
    "w2": {"active_lab_count": 20, "capacity": {"allocated_cpu_cores": 8.5}},
    "w3": {"active_lab_count": 25.5, "capacity": {"allocated_cpu_cores": 16}},
    "w4": {"active_lab_count": "5", "capacity": {"allocated_cpu_cores": None}},
    "w5": {"active_lab_count": None},
    "w6": {"capacity": {"allocated_cpu_cores": 7.5}},
    "w7": {"active_lab_count": True, "capacity": 8},
}

FIELD_CASES = [
    ("status.active_lab_count<20", ["w0", "w1"]),
    ("status.active_lab_count>19", ["w2", "w3"]),
    ("status.active_lab_count > 19.5", ["w2", "w3"]),
    ("status.active_lab_count<25.5", ["w0", "w1", "w2"]),
    ("status.active_lab_count>-1e3", ["w0", "w1", "w2", "w3"]),
    ("status.capacity.allocated_cpu_cores>8", ["w2", "w3"]),
    ("status.capacity.allocated_cpu_cores>7.5", ["w1", "w2", "w3"]),
    ("status.capacity.allocated_cpu_cores<8", ["w0", "w6"]),
    ("status.capacity.allocated_cpu_cores<8.0", ["w0", "w6"]),
    ("status.active_lab_count<20,status.capacity.allocated_cpu_cores>4", ["w1"]),
    ("status.active_lab_count>0,status.active_lab_count<21", ["w1", "w2"]),
    ("status.active_lab_count<20,status.phase=Ready", ["w0"]),
    ("status.capacity>0", ["w7"]),  # a number where others have an object
]


@pytest.mark.parametrize("cache", [False, True], ids=["etcd-read", "cached"])
async def test_field_comparisons(client: EtcdClient, prefix: str, cache: bool) -> None:
    paths = ["status.active_lab_count", "status.capacity.allocated_cpu_cores"]
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(
        client, prefix, cache=paths if cache else False
    )
    for i, (name, status) in enumerate(WORKERS.items()):
        phase = "Ready" if i % 2 == 0 else "Pending"
        await repo.add_async(
            {
                "metadata": {"name": name, "labels": {"slots": str(i)}},
                "spec": {},
                "status": {"phase": phase, **status},
            }
        )
    for selector, want in FIELD_CASES:
        assert names(await repo.list_async(field_selector=selector)) == want, selector
        assert await repo.count_async(field_selector=selector) == len(want), selector
    both = {"label_selector": "slots<3", "field_selector": "status.active_lab_count>0"}
    assert names(await repo.list_async(**both)) == ["w1", "w2"]
    assert await repo.count_async(**both) == 2


@pytest.mark.parametrize(
    ("selector", "position"),
    [
        ("status.active_lab_count<many", 24),
        ("status.active_lab_count<", 24),
        ("status.active_lab_count < 1.5.5", 26),
        ("status.active_lab_count<.5", 24),
        ("status.active_lab_count<1e999", 24),
        ("status.active_lab_count>=1", 24),
        ("status.phase=Ready,status.x>y", 28),
    ],
)
async def test_field_comparison_errors(
    client: EtcdClient, prefix: str, selector: str, position: int
) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    with pytest.raises(InvalidSelectorError) as info:
        await repo.list_async(field_selector=selector)
    assert info.value.position == position
    assert "number" in info.value.expected
    with pytest.raises(ValueError):  # InvalidSelectorError is a ValueError
        await repo.count_async(field_selector=selector)
