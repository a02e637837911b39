"""Placement: where one gpu_list entry trains (launcher words, env, hardware), as the reference scripts decide."""

from __future__ import annotations

import dataclasses
import re

from harness.planning.context import Env, PlanContext
from harness.planning.roles import Role
from harness.steps import Requirement

__all__ = ["Placement", "place"]

_GPU_ID = re.compile(r"-1|\d+")


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    """Where one gpu_list entry trains: the launcher words, env, hardware and the names the scripts derive."""

    gpu: str  # the gpu part as the scripts use it in names ("-1", "0", "0,1")
    ips: str
    nodes: int
    launcher: tuple[str, ...]  # words between the interpreter and the train script
    multi_node_order: bool  # Clas orders pretrain before epoch on multi-machine commands (Q5.3)
    multi: bool  # multi-GPU or multi-node command
    train_env: Env
    step_env: Env
    requires: tuple[Requirement, ...]


def place(ctx: PlanContext, entry: str, gpu_role: Role) -> Placement:
    """Q5.3: the scripts tell single/multi-GPU/multi-node apart by string lengths; fixed: by ';' and ','."""
    flavor = ctx.flavor
    ips = ""
    gpu = entry
    if ctx.quirks:
        if len(entry) > 15 and entry != "-1":
            ips, _, gpu = entry.partition(";")
        single = len(gpu) <= 2
        multi_node = not single and len(ips) > flavor.multi_node_ips_len
        nodes = len(ips.split(",")) if len(ips) > flavor.multi_node_ips_len else 1
    else:
        if ";" in entry:
            ips, _, gpu = entry.partition(";")
        ids = [g for g in gpu.split(",") if g]
        if not ids or any(not _GPU_ID.fullmatch(g) for g in ids):
            msg = f"gpu_list entry {entry!r} is not -1, a device id, a list of ids or 'ip,ip;ids'"
            raise ctx.error(gpu_role, msg)
        ip_list = [ip for ip in ips.split(",") if ip]
        multi_node = len(ip_list) > 1
        nodes = len(ip_list) if multi_node else 1
        single = len(ids) == 1 and not multi_node
    first = gpu.split(",")[0]
    if gpu == "-1":
        # Fixed: the scripts leave CUDA_VISIBLE_DEVICES alone, so "-1" could still train on a GPU.
        cpu_env: Env = () if ctx.quirks else (("CUDA_VISIBLE_DEVICES", ""),)
        return Placement(gpu, "", 1, (), False, False, cpu_env, cpu_env, ())
    requires: tuple[Requirement, ...]
    if single:
        launcher: tuple[str, ...] = ()
        requires = (Requirement.GPU,)
    elif not multi_node:
        launcher = ("-m", "paddle.distributed.launch", f"{flavor.launcher_flag}={gpu}")
        requires = (Requirement.GPU, Requirement.MULTI_GPU)
    else:
        launcher = ("-m", "paddle.distributed.launch", f"--ips={ips}", f"{flavor.launcher_flag}={gpu}")
        requires = (Requirement.GPU, Requirement.MULTI_NODE)
    return Placement(
        gpu=gpu,
        ips=ips,
        nodes=nodes,
        launcher=launcher,
        multi_node_order=multi_node,
        multi=not single,
        train_env=(("CUDA_VISIBLE_DEVICES", gpu),),
        step_env=(("CUDA_VISIBLE_DEVICES", first),),
        requires=requires,
    )
