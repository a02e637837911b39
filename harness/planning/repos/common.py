"""Pieces the repository script models share: the gpu x autocast x trainer loop and the chain record."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from harness.planning.context import PlanContext, param, safe_name
from harness.planning.placement import Placement, place
from harness.planning.roles import Role
from harness.steps import Chain, Step

__all__ = ["TrainJob", "dispatch_trainer", "model_chain", "train_jobs"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TrainJob:
    """One (gpu entry, autocast, trainer) of the train loop, with the names the scripts derive from it."""

    trainer: str
    autocast: str
    placement: Placement
    position: int  # the gpu_list entry's position
    stem: str  # <trainer>_gpus_<g>_autocast_<a>_nodes_<n>: log names
    save_log: str  # the train output folder (some scripts drop _nodes_1: flavor.folder_nodes_suffix)
    chain_id: str


def train_jobs(ctx: PlanContext, build: Callable[[TrainJob], list[Step] | None]) -> tuple[Chain, ...]:
    """gpu_list x autocast x trainer_list, in the scripts' order; ``build`` gives a job's steps (None: skipped)."""
    r = ctx.roles
    if not r.gpu_list.items:
        raise ctx.error(r.gpu_list, "gpu_list is empty")
    if not r.trainer_list.items:
        raise ctx.error(r.trainer_list, "trainer list is empty")
    chains: list[Chain] = []
    for position, entry in enumerate(r.gpu_list.items):
        placement = place(ctx, entry, r.gpu_list)
        for autocast in r.autocast.items or ("",):
            for trainer in r.trainer_list.items:
                stem = f"{trainer}_gpus_{placement.gpu}_autocast_{autocast}_nodes_{placement.nodes}"
                keep = ctx.flavor.folder_nodes_suffix or placement.nodes > 1
                folder = stem if keep else stem.rsplit("_nodes_", 1)[0]
                job = TrainJob(trainer=trainer, autocast=autocast, placement=placement, position=position, stem=stem,
                               save_log=f"{ctx.out}/{folder}", chain_id=safe_name(stem))
                steps = build(job)
                if steps:
                    chains.append(model_chain(ctx, job.chain_id, steps))
    return tuple(chains)


def model_chain(ctx: PlanContext, chain_id: str, steps: list[Step]) -> Chain:
    return Chain(id=chain_id, model=ctx.model_name, mode=ctx.mode,
                 steps=tuple(dataclasses.replace(s, needs=tuple(n for n in s.needs if n)) for s in steps))


def dispatch_trainer(trainer: str, table: tuple[tuple[Role, Role, bool], ...]) -> tuple[Role, Role, bool] | None:
    """The first (train line, export line, quantized?) whose train key is the trainer name."""
    for train, export, quant in table:
        if train.index and trainer == train.key:
            return train, export, quant
    return None


def set_param(role: Role, value: str) -> str:
    """``func_set_params <role key> <value>``."""
    return param(role.key, value)
