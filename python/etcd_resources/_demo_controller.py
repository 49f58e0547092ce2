"""The demo's lifecycle controller: new LabWorkers driven from Pending to Ready by a reconciler,
as the service's LabWorkerController drives them, against a simulated cloud provider."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .controller import Action, Controller
from .lab_workers import LabWorkerPhase

# How many times the simulated provider is asked before an instance is up.
POLLS_UNTIL_UP = 2


class SimulatedCloud:
    """Instances that are up after a few polls, as an EC2 instance is after a while."""

    def __init__(self) -> None:
        self.polls: dict[str, int] = {}

    def launch(self, name: str) -> None:
        self.polls.setdefault(name, 0)

    def is_up(self, name: str) -> bool:
        self.polls[name] += 1
        return self.polls[name] >= POLLS_UNTIL_UP


async def lifecycle(
    repository: Any,
    create: Callable[[str, str], Awaitable[Any]],
    names: list[str],
    show: Callable[[str], None],
) -> None:
    """Run a controller on ``repository`` while ``create`` makes the workers ``names``; return
    once each is Ready."""
    show("A controller drives new workers from Pending to Ready (a simulated cloud)")
    cloud = SimulatedCloud()
    ready: set[str] = set()

    async def reconcile(worker: Any) -> Action:
        name, phase = worker.metadata.name, worker.status.phase
        if phase is LabWorkerPhase.PENDING:
            cloud.launch(name)
            worker.status.phase = LabWorkerPhase.PROVISIONING_EC2
        elif phase is LabWorkerPhase.PROVISIONING_EC2:
            if not cloud.is_up(name):
                return Action.requeue_after(0.01)  # ask the provider again shortly
            worker.status.phase = LabWorkerPhase.READY
        else:
            if phase is LabWorkerPhase.READY and name in names:
                ready.add(name)
            return Action.done()
        await controller.write_status(worker)  # compare-and-swap; a spec edit meanwhile is kept
        print(f"  controller: {name:<9} {phase.value} -> {worker.status.phase.value}")
        return Action.done()  # the phase change triggers the next step (the predicate below)

    # Status writes trigger nothing by default; this controller steps on phase changes.
    controller = Controller(repository, reconcile, predicates=["field:status.phase"])
    runner = asyncio.ensure_future(controller.run())
    try:
        async with asyncio.timeout(10):
            await controller.wait_for(lambda s: s["synced"])
            for name in names:
                await create(name, "ccna")
            await controller.wait_for(lambda _: ready >= set(names))
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    stats = controller.stats()
    print(
        f"  {stats['reconciles']} reconciles, {stats['requeues']} requeues while the cloud "
        f"started the instances; {', '.join(names)} Ready"
    )
