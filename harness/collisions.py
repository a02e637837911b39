"""Plan-time check that no file the harness writes is a path, or lies inside a path, that a planned command uses."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from harness.errors import ConfigError
from harness.steps import Plan, Step, StepKind

__all__ = ["check_collisions", "command_paths", "harness_files"]

# The harness's own commands (golden comparison, portable checks) read the harness's logs on purpose.
_HARNESS_KINDS = frozenset({StepKind.COMPARE, StepKind.CHECK})


def harness_files(plan: Plan) -> Iterator[tuple[str, Step | None]]:
    """Every file the harness itself writes for ``plan`` (relative to the run root), with the step it belongs to."""
    yield posixpath.normpath(plan.results_log), None
    for step in plan.steps:
        yield posixpath.normpath(step.command.log_path), step


def command_paths(step: Step, *, repo_root: str = "") -> Iterator[tuple[str, str]]:
    """(path relative to the run root, argv word) for each word of ``step``'s argv that names a path.

    A word names a path when it, or the text after one of its ``=`` signs (``--output-dir=./out``,
    ``-o Global.save_model_dir=./out``), contains a ``/``. Paths are taken relative to the command's cwd; an absolute
    path counts only when it lies under ``repo_root`` (PaddleClas writes ``$(pwd)/test_tipc/...``).
    """
    root = repo_root.rstrip("/")
    for word in step.command.argv[1:]:
        pieces = word.split("=")
        for candidate in dict.fromkeys(["=".join(pieces[i:]) for i in range(len(pieces))]):
            text = candidate.strip("'\"")
            if "/" not in text or text.startswith("-"):  # an option word, not a path
                continue
            if text.startswith("/"):
                if not root or not text.startswith(f"{root}/"):
                    continue
                path = posixpath.normpath(text[len(root) + 1 :])
            else:
                path = posixpath.normpath(posixpath.join(step.command.cwd or ".", text))
            if path in (".", "") or path.startswith("../"):
                continue
            yield path, word


def check_collisions(plan: Plan, *, repo_root: str = "") -> Plan:
    """Return ``plan`` unchanged, or raise ConfigError naming the first harness file that equals, or lies inside,
    a path some planned command uses (the harness would create a file where the command expects a folder, or
    overwrite the command's own output). The plan's output folder and the folders above it are shared."""
    # The output folder and its ancestors (test_tipc/output/, .../<model>/) hold every log by design, the
    # reference scripts' too; a command writing there (PaddleGAN's --output_path test_tipc/output/) shares them.
    shared = posixpath.normpath(plan.output_dir)
    used: dict[str, tuple[Step, str]] = {}
    for step in plan.steps:
        if step.kind in _HARNESS_KINDS:
            continue
        for path, word in command_paths(step, repo_root=repo_root):
            if shared == path or shared.startswith(f"{path}/"):
                continue
            used.setdefault(path, (step, word))
    if not used:
        return plan
    for written, owner in harness_files(plan):
        probe = written
        while probe not in (".", "", "/"):
            hit = used.get(probe)
            if hit is not None:
                step, word = hit
                where = "is" if probe == written else "lies inside"
                whose = f"step {owner.name}'s log" if owner is not None else "the results log"
                msg = (
                    f"{whose} {written} {where} {probe}, which step {step.name} uses ({word!r}); "
                    "the harness must not write there"
                )
                raise ConfigError(plan.config_path, (owner or step).line, msg)
            probe = posixpath.dirname(probe)
    return plan
