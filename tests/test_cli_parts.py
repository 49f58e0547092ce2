"""The command line's own pieces, in process (no etcd): kubectl's JSONPath subset, ages,
reading files as ``apply`` does, the completion script."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from etcd_resources.cli import cli
from etcd_resources.cli.documents import dump_yaml, merged, parse
from etcd_resources.cli.errors import CommandError
from etcd_resources.cli.jsonpath import JsonPathError, Template, evaluate
from etcd_resources.cli.output import human_duration

DOC: dict[str, Any] = {
    "kind": "List",
    "items": [
        {
            "metadata": {"name": "w1", "labels": {"lab-track": "ccna", "a.b/c": "x"}},
            "status": {
                "phase": "Ready",
                "active_lab_count": 3,
                "conditions": [
                    {"type": "Ready", "status": True},
                    {"type": "Healthy", "status": False},
                ],
            },
        },
        {"metadata": {"name": "w2", "labels": {}}, "status": {"phase": "Pending"}},
    ],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items[*].metadata.name}", "w1 w2"),
        ("{.items[0].metadata.labels.lab-track}", "ccna"),
        ("{.items[0].metadata.labels['a.b/c']}", "x"),
        ("{.items[0].metadata.labels.a\\.b/c}", "x"),
        ("{.items[-1].metadata.name}", "w2"),
        ("{.items[0:1].metadata.name}", "w1"),
        ("{..phase}", "Ready Pending"),
        ('{.items[?(@.status.phase=="Pending")].metadata.name}', "w2"),
        ("{.items[?(@.status.active_lab_count>2)].metadata.name}", "w1"),
        ("{.items[?(@.status.active_lab_count)].metadata.name}", "w1"),
        ("{.items[0].status.conditions[?(@.status==false)].type}", "Healthy"),
        ("{.items[0].status.conditions[0]}", '{"type":"Ready","status":true}'),
        ("{.items[1].status.missing}", ""),
        ('{range .items[*]}{.metadata.name}={.status.phase}{"\\n"}{end}', "w1=Ready\nw2=Pending\n"),
        ("{range .items[*]}[{$.kind}]{end}", "[List][List]"),
        ("names: {.items[*].metadata.name}.", "names: w1 w2."),
    ],
)
def test_jsonpath_templates_as_kubectl_prints_them(template: str, expected: str) -> None:
    assert Template(template).render(DOC) == expected


@pytest.mark.parametrize(
    "template", ["{.items[", "{range .items[*]}{.x}", "{end}", "{.items[?(x)]}", "{.a[b]}"]
)
def test_malformed_templates_are_refused(template: str) -> None:
    with pytest.raises(JsonPathError):
        Template(template)


def test_paths_without_braces_or_a_leading_dot() -> None:
    assert evaluate("metadata.name", DOC["items"][0]) == ["w1"]
    assert evaluate("{.status.phase}", DOC["items"][1]) == ["Pending"]


@pytest.mark.parametrize(
    ("seconds", "age"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (20 * 86400, "20d"),
        (3 * 365 * 86400 + 2 * 86400, "3y2d"),
        (-5, "<invalid>"),
    ],
)
def test_ages_as_kubectl_writes_them(seconds: int, age: str) -> None:
    assert human_duration(seconds) == age


def test_files_as_apply_reads_them() -> None:
    # A JSON stream (what `get -w -o json` prints), a List, camelCase metadata.
    stream = (
        '{"metadata": {"name": "a"}}\n{"kind": "List", "items": [{"metadata": '
        '{"name": "b", "resourceVersion": "7"}}]}'
    )
    docs = parse(stream, "x")
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]
    assert docs[1]["metadata"]["resource_version"] == "7"
    # Timestamps stay text, as stored, whatever the quoting; multi-line text round-trips.
    doc = {
        "metadata": {"name": "a", "creation_timestamp": "2026-01-02T03:04:05+00:00"},
        "spec": {"script": "one\ntwo\n", "flag": "yes"},
    }
    text = dump_yaml(doc)
    assert "script: |\n" in text
    assert parse(text, "x") == [doc]
    assert parse("metadata: {name: a, t: 2026-01-02T03:04:05Z}", "x")[0]["metadata"]["t"] == (
        "2026-01-02T03:04:05Z"
    )
    with pytest.raises(CommandError, match="a resource is a mapping"):
        parse("- 1\n", "x")


def test_apply_replaces_the_sections_a_file_gives_and_keeps_the_rest() -> None:
    stored = {
        "kind": "W",
        "metadata": {
            "name": "a",
            "uid": "u",
            "resource_version": "5",
            "labels": {"x": "1"},
            "annotations": {"k": "v"},
        },
        "spec": {"a": 1, "b": 2},
        "status": {"phase": "Ready"},
    }
    result = merged(
        stored, {"metadata": {"name": "a", "uid": "other", "labels": {"y": "2"}}, "spec": {"a": 3}}
    )
    assert result["metadata"] == {
        "name": "a",
        "uid": "u",
        "resource_version": "5",
        "labels": {"y": "2"},
        "annotations": {"k": "v"},
    }
    assert result["spec"] == {"a": 3} and result["status"] == {"phase": "Ready"}
    assert stored["spec"] == {"a": 1, "b": 2}  # not changed in place


def test_completion_scripts() -> None:
    result = CliRunner().invoke(cli, ["completion", "bash"])
    assert result.exit_code == 0 and "_ETCD_RESOURCES_COMPLETE" in result.output


def test_describe_shows_a_generation_of_zero() -> None:
    # The Python repository stored Neuroglia's generation 0 for a new resource.
    from rich.console import Console

    from etcd_resources.cli.describe import render

    console = Console(width=100, color_system=None, record=True)
    console.print(render({"kind": "LabWorker", "metadata": {"name": "w", "generation": 0}}))
    text = console.export_text()
    assert "Generation:" in text and "Generation:         0" in text
