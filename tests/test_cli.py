"""The command line as a user drives it: the ``etcd-resources`` console script in a
subprocess, against the session's real etcd (``ETCD_ENDPOINTS``) under this test's own prefix
(``ETCD_PREFIX``), on LabWorkers written as the service writes them. Each test checks what the
command prints and what etcd then holds (read back with the library).

Every invocation also checks what pipes get: no colour codes, and a failure is one line on
stderr starting with ``error:``."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from etcd_resources import EtcdClient, EtcdLabWorkerResourceRepository, ResourceRepository

from . import service_model as svc
from .helpers import worker
from .test_typed import active_worker
from .test_watch import etcd_watchers, wait_for

EXE = Path(sys.executable).with_name("etcd-resources")
COMMAND = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "etcd_resources.cli"]


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[list[str]]:
        return [line.split() for line in self.out.splitlines()]


@pytest.fixture
def env(etcd_endpoints: list[str], etcd_prefix: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "EDIT"))}
    clean.pop("CONNECTION_STRINGS", None)
    return {**clean, "ETCD_ENDPOINTS": ",".join(etcd_endpoints), "ETCD_PREFIX": etcd_prefix}


def cli(
    env: dict[str, str], *args: str, code: int = 0, input: str | None = None, **extra_env: str
) -> Run:
    done = subprocess.run(
        [*COMMAND, *args],
        env={**env, **extra_env},
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    run = Run(done.returncode, done.stdout, done.stderr)
    assert run.code == code, f"{args}: exit {run.code}\n{run.out}\n{run.err}"
    assert "\x1b[" not in run.out + run.err, "colour codes in a pipe"
    if code != 0 and input is None:
        assert run.err.count("\n") == 1 and run.err.startswith("error: "), run.err
    return run


@pytest.fixture
def workers(etcd_client: EtcdClient, etcd_prefix: str) -> EtcdLabWorkerResourceRepository:
    """The service's repository, writing the service's own classes."""
    return EtcdLabWorkerResourceRepository(etcd_client, etcd_prefix, resource_type=svc.LabWorker)


@pytest.fixture
def docs(etcd_client: EtcdClient, etcd_prefix: str) -> ResourceRepository[dict[str, Any]]:
    """The same prefix read as dicts."""
    return ResourceRepository(etcd_client, etcd_prefix)


async def seed(workers: EtcdLabWorkerResourceRepository) -> None:
    await workers.add_async(active_worker("w1", "ccna"))
    await workers.add_async(svc.new_worker("w2", "ccnp"))
    await workers.add_async(active_worker("w3", "ccna"))


async def test_get_prints_tables_and_every_output_format(
    env: dict[str, str], workers: EtcdLabWorkerResourceRepository
) -> None:
    await seed(workers)

    table = cli(env, "get")
    assert table.lines == [
        ["NAME", "PHASE", "TRACK", "AGE"],
        ["w1", "Active", "ccna", table.lines[1][3]],
        ["w2", "Pending", "ccnp", table.lines[2][3]],
        ["w3", "Active", "ccna", table.lines[3][3]],
    ]
    assert table.lines[1][3].endswith("s")  # an age: written seconds ago

    wide = cli(env, "get", "-o", "wide", "-A", "--show-labels", "--sort-by", ".spec.lab_track")
    assert wide.lines[0] == [
        "NAMESPACE",
        "NAME",
        "PHASE",
        "TRACK",
        "LABS",
        "INSTANCE",
        "EC2",
        "IP",
        "AGE",
        "LABELS",
    ]
    assert wide.lines[1][:8] == [
        "labs",
        "w1",
        "Active",
        "ccna",
        "2/20",
        "i-0abc",
        "running",
        "<none>",
    ]
    assert wide.lines[1][9] == "lab-track=ccna"
    assert [row[1] for row in wide.lines[1:]] == ["w1", "w3", "w2"]  # ccna, ccna, ccnp

    names = cli(
        env,
        "get",
        "-l",
        "lab-track=ccna",
        "--field-selector",
        "status.phase=Active",
        "-n",
        "labs",
        "-o",
        "name",
    )
    assert names.out == "labworker/w1\nlabworker/w3\n"

    template = (
        '{range .items[*]}{.metadata.name}{"\\t"}{.status.capacity.allocated_cpu_cores}'
        '{"\\t"}{.status.conditions[?(@.type=="HealthCheckPassed")].reason}{"\\n"}{end}'
    )
    assert cli(env, "get", "-o", f"jsonpath={template}").out == (
        "w1\t8.5\tProbe\nw2\t\t\nw3\t8.5\tProbe\n"
    )
    columns = cli(
        env,
        "get",
        "w3",
        "w2",
        "-o",
        "custom-columns=WORKER:.metadata.name,LABS:.status.hosted_lab_ids",
    )
    assert columns.lines == [["WORKER", "LABS"], ["w3", '["lab-1","lab-2"]'], ["w2", "[]"]]

    # Pages of one resource each, all read at one revision: the same List as one listing.
    paged = json.loads(cli(env, "get", "--chunk-size", "1", "-o", "json").out)
    assert paged["apiVersion"] == "v1" and paged["kind"] == "List"
    assert [i["metadata"]["name"] for i in paged["items"]] == ["w1", "w2", "w3"]
    stored = await workers.get_async("w1")
    assert paged["items"][0]["metadata"]["resource_version"] == stored.metadata.resource_version
    assert paged["items"][0]["status"]["conditions"][0]["type"] == "HealthCheckPassed"

    one = yaml.safe_load(cli(env, "get", "labworker/w2", "-o", "yaml").out)
    assert one["kind"] == "LabWorker" and one["metadata"]["name"] == "w2"  # itself, not a List

    missing = cli(env, "get", "w1", "nope", code=1)
    assert missing.lines[1][0] == "w1" and '"nope" not found' in missing.err


async def test_json_and_yaml_are_what_apply_reads_back(
    env: dict[str, str],
    workers: EtcdLabWorkerResourceRepository,
    docs: ResourceRepository[dict[str, Any]],
    tmp_path: Path,
) -> None:
    await seed(workers)
    before = {d["metadata"]["name"]: d for d in await docs.list_async()}

    exported = tmp_path / "workers.yaml"
    exported.write_text(cli(env, "get", "-o", "yaml").out)
    unchanged = cli(env, "apply", "-f", str(exported))
    assert unchanged.out == (
        "labworker/w1 unchanged\nlabworker/w2 unchanged\nlabworker/w3 unchanged\n"
    )
    as_json = cli(env, "get", "w1", "w2", "-o", "json").out
    assert cli(env, "apply", "-f", "-", input=as_json).out == (
        "labworker/w1 unchanged\nlabworker/w2 unchanged\n"
    )
    assert {d["metadata"]["name"]: d for d in await docs.list_async()} == before  # no writes

    # Change one spec in the exported List: --dry-run shows it and writes nothing.
    exported.write_text(exported.read_text().replace("lab_track: ccnp", "lab_track: ccnp-v2"))
    dry = cli(env, "apply", "-f", str(exported), "--dry-run")
    assert dry.out.splitlines()[:2] == [
        "labworker/w1 unchanged (dry run)",
        "labworker/w2 configured (dry run)",
    ]
    assert "-  lab_track: ccnp\n+  lab_track: ccnp-v2\n" in dry.out
    assert await docs.get_async("w2") == before["w2"]

    applied = cli(env, "apply", "-f", str(exported))
    assert applied.out == (
        "labworker/w1 unchanged\nlabworker/w2 configured\nlabworker/w3 unchanged\n"
    )
    w2 = await workers.get_async("w2")
    assert w2.spec.lab_track == "ccnp-v2" and w2.metadata.generation == 2
    assert w2.status.phase is svc.LabWorkerPhase.PENDING  # typed, whole, as the service reads

    # The file pins w2's old version: after anyone else's write, apply refuses to overwrite.
    exported.write_text(exported.read_text().replace("lab_track: ccnp-v2", "lab_track: x"))
    w2.status.phase = svc.LabWorkerPhase.FAILED
    w2.metadata.resource_version = None
    await workers.update_async(w2)
    stale = cli(env, "apply", "-f", str(exported), code=1)
    assert "labworker/w2: conflict" in stale.err and "labworker/w1 unchanged" in stale.out
    assert (await workers.get_async("w2")).spec.lab_track == "ccnp-v2"

    # New resources, several documents per file, a List among them, another kind.
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a.yaml").write_text(
        yaml.safe_dump(worker("w4", "devnet", "Ready"))
        + "---\n"
        + yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {"kind": "Note", "metadata": {"name": "note-1"}, "spec": {"text": "hello"}}
                ],
            }
        )
    )
    (tmp_path / "new" / "b.json").write_text(json.dumps(worker("w5", "devnet")))
    created = cli(env, "apply", "-f", str(tmp_path / "new"))
    assert created.out == "labworker/w4 created\nnote/note-1 created\nlabworker/w5 created\n"
    assert (await docs.get_async("note-1"))["spec"] == {"text": "hello"}
    assert (await workers.get_async("w4")).status.phase is svc.LabWorkerPhase.READY

    # Kinds other than LabWorker: NAME, PHASE where present, AGE.
    mixed = cli(env, "get", "note-1", "w4")
    assert [row[:2] for row in mixed.lines] == [
        ["NAME", "PHASE"],
        ["note-1", "<none>"],
        ["w4", "Ready"],
    ]
    assert mixed.lines[0] == ["NAME", "PHASE", "AGE"]


async def test_apply_refuses_bad_files_and_writes_nothing(
    env: dict[str, str], docs: ResourceRepository[dict[str, Any]], tmp_path: Path
) -> None:
    good = yaml.safe_dump(worker("w1"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(good + "---\nkind: LabWorker\nmetadata: {labels: {a: b}}\n")
    refused = cli(env, "apply", "-f", str(bad), code=1)
    assert "document 2: metadata.name is missing" in refused.err
    bad.write_text(good + "---\nspec: [unclosed\n")
    assert "not valid YAML or JSON" in cli(env, "apply", "-f", str(bad), code=1).err
    assert await docs.count_async() == 0


async def test_describe_lays_out_a_worker(
    env: dict[str, str], workers: EtcdLabWorkerResourceRepository
) -> None:
    w1 = active_worker("w1")
    w1.metadata.finalizers = ["lab.neuroglia.io/cleanup"]
    w1.metadata.annotations = {"owner": "ops"}
    await workers.add_async(w1)
    stored = await workers.get_async("w1")

    lines = cli(env, "describe", "w1").out.splitlines()
    fields = {
        line.split(":", 1)[0]: line.split(":", 1)[1].strip()
        for line in lines
        if line and not line.startswith(" ") and line.split(":", 1)[1].strip()
    }
    assert fields["Name"] == "w1" and fields["Namespace"] == "labs"
    assert fields["Kind"] == "LabWorker" and fields["Labels"] == "lab-track=ccna"
    assert fields["Annotations"] == "owner=ops"
    assert fields["Finalizers"] == "lab.neuroglia.io/cleanup"
    assert fields["Resource Version"] == stored.metadata.resource_version
    assert fields["UID"] == stored.metadata.uid
    conditions = lines.index("  conditions:")
    assert lines[conditions + 1].split() == [
        "TYPE",
        "STATUS",
        "LAST",
        "TRANSITION",
        "REASON",
        "MESSAGE",
    ]
    assert lines[conditions + 2].split() == [
        "HealthCheckPassed",
        "true",
        "2026-01-02T03:04:05+00:00",
        "Probe",
        "healthy",
    ]
    assert "    ami_id:             ami-1" in lines
    assert "  hosted_lab_ids:       lab-1, lab-2" in lines


EDITOR = """\
import asyncio, os, pathlib, sys

path = pathlib.Path(sys.argv[1])
runs = pathlib.Path(os.environ["EDIT_RUNS"])
n = int(runs.read_text()) if runs.exists() else 0
runs.write_text(str(n + 1))
text = path.read_text()
pathlib.Path(os.environ["EDIT_RUNS"] + f".seen{n}").write_text(text)
if os.environ.get("EDIT_CONFLICT") and n == 0:
    # Someone else changes the resource while the user edits: the save will conflict.
    from etcd_resources import EtcdClient, ResourceRepository

    async def meanwhile():
        async with EtcdClient(os.environ["ETCD_ENDPOINTS"].split(",")) as client:
            repo = ResourceRepository(client, os.environ["ETCD_PREFIX"])
            doc = await repo.get_async("w1")
            doc["metadata"]["labels"]["meanwhile"] = "yes"
            await repo.update_async(doc)

    asyncio.run(meanwhile())
if "EDIT_CONTENT" in os.environ:
    text = os.environ["EDIT_CONTENT"]
else:
    text = text.replace(os.environ["EDIT_FROM"], os.environ["EDIT_TO"])
path.write_text(text)
"""


async def test_edit_writes_a_compare_and_swap_and_reopens_on_a_conflict(
    env: dict[str, str],
    workers: EtcdLabWorkerResourceRepository,
    docs: ResourceRepository[dict[str, Any]],
    tmp_path: Path,
) -> None:
    await workers.add_async(active_worker("w1"))
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    editor = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"

    def edit(name: str, code: int = 0, **how: str) -> Run:
        runs = tmp_path / f"runs-{name}"
        return cli(env, "edit", "w1", code=code, EDITOR=editor, EDIT_RUNS=str(runs), **how)

    # A change: written, on the version opened.
    before = await docs.get_async("w1")
    done = edit("change", EDIT_FROM="\n  phase: Active", EDIT_TO="\n  phase: Draining")
    assert done.out == "labworker/w1 edited\n"
    after = await docs.get_async("w1")
    assert after["status"]["phase"] == "Draining"
    assert after["metadata"]["generation"] == before["metadata"]["generation"]  # status only
    assert (tmp_path / "runs-change.seen0").read_text().startswith("# Please edit the object")

    # No change, an emptied file, an invalid edit, a renamed resource: nothing is written.
    version = after["metadata"]["resource_version"]
    assert "Edit cancelled, no changes made." in edit("same", EDIT_FROM="x", EDIT_TO="x").err
    assert "Edit cancelled" in edit("empty", EDIT_CONTENT="# nothing\n").err
    invalid = edit("invalid", code=1, EDIT_FROM="status:", EDIT_TO="status: [")
    assert "not valid YAML or JSON" in invalid.err and "your edit is in" in invalid.err
    renamed = edit("renamed", code=1, EDIT_FROM="name: w1", EDIT_TO="name: w9")
    assert "metadata.name cannot change" in renamed.err
    assert (await docs.get_async("w1"))["metadata"]["resource_version"] == version

    # A conflict: the editor reopens on the current version, the user's text as a comment.
    conflict = edit(
        "conflict",
        EDIT_CONFLICT="1",
        EDIT_FROM="instance_type: m5zn.metal",
        EDIT_TO="instance_type: c5.4xlarge",
    )
    assert (tmp_path / "runs-conflict").read_text() == "2"
    assert conflict.out == "labworker/w1 edited\n"
    assert "was changed in etcd since it was opened" in conflict.err
    reopened = (tmp_path / "runs-conflict.seen1").read_text()
    assert "#   instance_type: c5.4xlarge" in reopened.replace("    instance_type", "instance_type")
    assert "    meanwhile: 'yes'\n" in reopened  # the current version, uncommented
    final = await docs.get_async("w1")
    assert final["metadata"]["labels"] == {"lab-track": "ccna", "meanwhile": "yes"}
    assert final["spec"]["aws_config"]["instance_type"] == "c5.4xlarge"
    assert final["metadata"]["generation"] == before["metadata"]["generation"] + 1


async def test_delete_asks_honours_finalizers_and_dry_runs(
    env: dict[str, str], docs: ResourceRepository[dict[str, Any]]
) -> None:
    for name in ("w1", "w2", "w3"):
        await docs.add_async(worker(name, "ccna"))
    await docs.add_async(worker("held", "ccnp", finalizers=["lab.neuroglia.io/cleanup"]))

    dry = cli(env, "delete", "-l", "lab-track=ccna", "--dry-run")
    assert dry.out == (
        "labworker/w1 deleted (dry run)\nlabworker/w2 deleted (dry run)\n"
        "labworker/w3 deleted (dry run)\n"
    )
    declined = cli(env, "delete", "-l", "lab-track=ccna", code=1, input="n\n")
    assert "Delete 3 resources" in declined.err and "nothing deleted" in declined.err
    assert await docs.count_async() == 4

    assert cli(env, "delete", "w1").out == "labworker/w1 deleted\n"  # a name: no question
    held = cli(env, "delete", "held")
    assert held.out == (
        "labworker/held marked for deletion (waiting for finalizers: lab.neuroglia.io/cleanup)\n"
    )
    assert (await docs.get_async("held"))["metadata"]["deletion_timestamp"]
    assert "held" in cli(env, "get", "held").out and "(deleting)" in cli(env, "get").out

    both = cli(env, "delete", "-l", "lab-track=ccna", "--yes")
    assert both.out == "labworker/w2 deleted\nlabworker/w3 deleted\n"
    assert [d["metadata"]["name"] for d in await docs.list_async()] == ["held"]
    assert '"w2" not found' in cli(env, "delete", "w2", code=1).err


async def test_label_annotate_and_count(
    env: dict[str, str], docs: ResourceRepository[dict[str, Any]]
) -> None:
    for name, track in (("w1", "ccna"), ("w2", "ccna"), ("w3", "ccnp")):
        await docs.add_async(worker(name, track))

    assert cli(env, "label", "w1", "w2", "tier=gold").out == (
        "labworker/w1 labeled\nlabworker/w2 labeled\n"
    )
    version = (await docs.get_async("w1"))["metadata"]["resource_version"]
    refused = cli(env, "label", "w1", "tier=silver", code=1)
    assert "'tier' already has a value (gold), and --overwrite is false" in refused.err
    assert (await docs.get_async("w1"))["metadata"]["resource_version"] == version
    assert cli(env, "label", "w1", "tier=gold").out == "labworker/w1 not labeled\n"
    assert cli(env, "label", "-l", "tier=gold", "tier=silver", "--overwrite").out == (
        "labworker/w1 labeled\nlabworker/w2 labeled\n"
    )
    assert cli(env, "count", "-l", "tier=silver,lab-track=ccna").out == "2\n"
    cli(env, "label", "w2", "tier-", "--resource-version", "1", code=1)  # a stale version
    assert cli(env, "label", "w2", "tier-").out == "labworker/w2 labeled\n"
    assert cli(env, "annotate", "w3", "note=kernel upgrade due").out == "labworker/w3 annotated\n"

    w1, w2, w3 = [await docs.get_async(n) for n in ("w1", "w2", "w3")]
    assert w1["metadata"]["labels"] == {"lab-track": "ccna", "tier": "silver"}
    assert w2["metadata"]["labels"] == {"lab-track": "ccna"}
    assert w3["metadata"]["annotations"] == {"note": "kernel upgrade due"}
    assert cli(env, "count", "--field-selector", "metadata.name!=w1").out == "2\n"


async def _line(proc: asyncio.subprocess.Process) -> list[str]:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
    assert raw, "the watch ended"
    return raw.decode().split()


async def test_get_watch_prints_each_change_with_its_type(
    env: dict[str, str], docs: ResourceRepository[dict[str, Any]]
) -> None:
    await docs.add_async(worker("w1", "ccna", "Pending"))
    await docs.add_async(worker("w2", "ccnp", "Ready"))
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        "get",
        "-w",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert await _line(proc) == ["EVENT", "NAME", "PHASE", "TRACK", "AGE"]
        assert (await _line(proc))[:4] == ["ADDED", "w1", "Pending", "ccna"]
        assert (await _line(proc))[:4] == ["ADDED", "w2", "Ready", "ccnp"]
        # The watch starts at the listing's revision: changes from now on are never missed.
        w1 = await docs.get_async("w1")
        await docs.update_async({**w1, "status": {"phase": "Ready"}})
        assert (await _line(proc))[:4] == ["MODIFIED", "w1", "Ready", "ccna"]
        await docs.add_async(worker("w3", "devnet"))
        assert (await _line(proc))[:4] == ["ADDED", "w3", "Pending", "devnet"]
        await docs.remove_async("w2")
        assert (await _line(proc))[:4] == ["DELETED", "w2", "Ready", "ccnp"]
    finally:
        proc.terminate()
        await proc.wait()


async def test_get_watch_only_prints_changes_only(
    env: dict[str, str], etcd_endpoints: list[str], docs: ResourceRepository[dict[str, Any]]
) -> None:
    await docs.add_async(worker("w1", "ccna"))
    await docs.add_async(worker("w2", "ccna"))
    watchers = etcd_watchers(etcd_endpoints[0])
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        "get",
        "--watch-only",
        "-l",
        "lab-track=ccna",
        "-o",
        "name",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for(lambda: etcd_watchers(etcd_endpoints[0]) > watchers, within=20)
        await docs.add_async(worker("w9", "ccnp"))  # not selected
        w2 = await docs.get_async("w2")
        await docs.update_async({**w2, "status": {"phase": "Ready"}})
        assert await _line(proc) == ["labworker/w2"]  # no listing first, no w9
    finally:
        proc.terminate()
        await proc.wait()


def test_errors_are_one_line_with_exit_codes(env: dict[str, str]) -> None:
    memory = cli(env, "get", code=1, ETCD_ENDPOINTS="memory://")
    assert "memory:// is the embedded store of one process" in memory.err
    assert "--endpoints" in memory.err
    assert "No such option" in cli(env, "get", "--bogus", code=2).err
    assert "invalid selector" in cli(env, "count", "-l", "a in", code=2).err
    assert "unknown output format" in cli(env, "get", "-o", "xml", code=2).err
    assert "names or a selector, not both" in cli(env, "get", "w1", "-l", "a", code=2).err
    down = cli(env, "get", "--endpoints", "http://127.0.0.1:1", "--request-timeout", "2", code=1)
    assert "cannot reach etcd at http://127.0.0.1:1" in down.err
    # Flags before the verb work too, and win over the environment.
    assert cli(env, "--prefix", "/elsewhere-empty/", "count").out == "0\n"


async def test_namespaced_keys(
    env: dict[str, str], etcd_client: EtcdClient, etcd_prefix: str
) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(
        etcd_client, etcd_prefix, namespaced=True
    )
    await repo.add_async(worker("w1", "ccna", namespace="labs-a"))
    await repo.add_async(worker("w1", "ccnp", namespace="labs-b"))

    listed = cli(env, "get", "-A", "--namespaced")
    assert [row[:3] for row in listed.lines] == [
        ["NAMESPACE", "NAME", "PHASE"],
        ["labs-a", "w1", "Pending"],
        ["labs-b", "w1", "Pending"],
    ]
    assert cli(env, "--namespaced", "delete", "w1", "-n", "labs-b").out == "labworker/w1 deleted\n"
    assert await repo.get_async("w1", "labs-b") is None
    assert (await repo.get_async("w1", "labs-a"))["spec"]["lab_track"] == "ccna"
