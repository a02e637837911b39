"""TipcConfig x mode x options -> Plan (ordered chains of frozen steps). Pure: no file, env or clock access.

The planner follows the reference ``test_train_inference_python.sh`` scripts step by step. Their conventions live
in the flavor table (``harness/flavors.py``); their bugs are reproduced only with ``quirks=True`` and otherwise
fixed. Every such place is marked with its QUIRKS id (``Q4.3`` ...), and test_tipc/docs/quirks.md lists them.

The work is split along the data flow, one module each under ``harness/planning/``: ``roles`` (the layout's
lines resolved once into a typed view), ``context`` (values: per-mode values, word splitting), ``placement``
(where a gpu_list entry trains), ``commands`` (train/eval/export argv), ``grid`` (the inference grid) and
``chains`` (what each mode runs).
"""

from __future__ import annotations

import posixpath

from harness.check_steps import add_checks
from harness.collisions import check_collisions
from harness.config import Layout, TipcConfig
from harness.containment import check_plan_paths
from harness.errors import ConfigError
from harness.flavors import Flavor, pick_flavor
from harness.layouts import check_layout
from harness.planning.chains import build_chains
from harness.planning.context import PlanContext, safe_name
from harness.planning.options import MODES, TRAIN_MODES, VALUE_MODES, PlanOptions
from harness.steps import Chain, Plan
from harness.values import check_numbers

__all__ = ["MODES", "TRAIN_MODES", "VALUE_MODES", "Plan", "PlanOptions", "build_plan", "safe_name"]


def build_plan(config: TipcConfig, mode: str, options: PlanOptions = PlanOptions()) -> Plan:
    """Expand one config and mode into chains of steps, exactly as ordered as the reference script runs them."""
    if mode not in MODES:
        msg = f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}"
        raise ConfigError(config.path, 0, msg)
    flavor, how = pick_flavor(config, options.flavor)
    if config.layout is Layout.PTQ:
        # Q7.6: a ptq_params config belongs to test_ptq_inference_python.sh; this script runs nothing for it.
        # The scripts still read line 2 as model_name and write an empty results log under it.
        model_name = ""
        if config.has(2) and config.at(2).key == "model_name":
            entry = config.at(2)
            model_name = entry.bash_value if options.quirks and not flavor.value_rest_of_line else entry.value
        plan = _plan(config, mode, flavor, options, model_name, (), (how, "ptq_params layout: nothing to run (Q7.6)"))
        check_plan_paths(plan, config)  # its results log is still written under model_name
        return plan
    check_layout(config, flavor.name)
    ctx = PlanContext(config, mode, flavor, options)
    eval_line = config.section_start("eval_params")
    if config.layout is Layout.FULL and eval_line != 23:
        ctx.notes.append(f"eval_params is on logical line {eval_line}, not 23: later lines are read one position "
                         "off, as the reference script reads them (Q9.14)")
    else:  # read one position off, the numeric roles hold other keys' values: the note above says so instead
        check_numbers(config, ctx.roles, quirks=options.quirks)
    chains = add_checks(config, mode, options.quirks, ctx.python, build_chains(ctx))
    plan = check_collisions(_plan(config, mode, flavor, options, ctx.model_name, chains, (how, *ctx.notes)),
                            repo_root=options.repo_root)
    check_plan_paths(plan, config)  # every path the harness writes stays in the output folder
    return plan


def _plan(
    config: TipcConfig,
    mode: str,
    flavor: Flavor,
    options: PlanOptions,
    model_name: str,
    chains: tuple[Chain, ...],
    notes: tuple[str, ...],
) -> Plan:
    output_dir = posixpath.join(options.output_root, model_name or "unnamed", mode)
    return Plan(
        config_path=config.path,
        model_name=model_name,
        mode=mode,
        flavor=flavor.name,
        quirks=options.quirks,
        output_dir=output_dir,
        results_log=posixpath.join(output_dir, "results_python.log"),
        chains=chains,
        notes=notes,
    )
