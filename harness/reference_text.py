"""The text a reference TIPC script prints for a command in results_python.log, byte for byte (--quirks mode)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Protocol

from harness.steps import StepKind

__all__ = ["REFERENCE_STYLES", "LineStyle", "bash_join", "reference_text"]


class _HasText(Protocol):
    @property
    def text(self) -> str: ...


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LineStyle:
    """How a flavor's ``status_check`` frames the command (QUIRKS.md 1.1-1.4)."""

    model_prefix: bool  # "<model_name> - " before the command (1.2)
    log_suffix: bool  # " - <log path>" after the command (1.3, PaddleClas and the full-layout repositories)
    end: str  # what follows, up to the colour reset


# Keyed by flavor name (harness/flavors.py). Step6's status_check prints "${run_command}!  " (checked byte for byte
# against its script in tests/test_real_client_step6.py); the full-layout repositories print
# "${run_command} - ${log_path}" and then one or two spaces depending on the copy of common_func.sh (two assumed:
# not checked against a run); Paddle3D's ignores the model name.
_WITH_LOG = LineStyle(model_prefix=True, log_suffix=True, end="  ")
REFERENCE_STYLES: Mapping[str, LineStyle] = {
    "tutorial": LineStyle(model_prefix=True, log_suffix=False, end="!  "),
    "paddleclas": _WITH_LOG,
    "paddledetection": _WITH_LOG,
    "paddleseg": _WITH_LOG,
    "paddlevideo": _WITH_LOG,
    "paddlegan": _WITH_LOG,
    "paddle3d": LineStyle(model_prefix=False, log_suffix=False, end="!  "),
}
_DEFAULT_STYLE = REFERENCE_STYLES["tutorial"]


def bash_join(pieces: Iterable[str | _HasText]) -> str:
    """The pieces joined the way the scripts' ``cmd="${a} ${b} ..."`` does: an empty piece is ``func_set_params``'s
    single space, so a skipped parameter leaves three spaces between its neighbours."""
    return " ".join((piece if isinstance(piece, str) else piece.text) or " " for piece in pieces)


def reference_text(
    argv: tuple[str, ...],
    texts: Mapping[tuple[str, ...], str],
    *,
    kind: StepKind,
    log: str,
    log_dir: tuple[str, str],
    model_name: str,
    flavor: str,
) -> str:
    """What follows ``Run successfully with command - `` in the reference line, up to the colour reset.

    ``texts`` maps argv tails to the text bash built them from (recorded while planning); the words in front of
    the tail (interpreter, launcher) are joined by single spaces, as the script's template writes them.
    ``log_dir`` is (the harness's output folder, the reference's spelling of it: ``./test_tipc/...`` or absolute).
    """
    command = " ".join(argv)
    for start in range(1, len(argv) + 1):
        tail = texts.get(argv[start:])
        if tail is not None:
            command = " ".join((*argv[:start], tail))
            break
    ours, theirs = log_dir
    reference_log = theirs + log[len(ours) :] if log.startswith(ours) else log
    if kind is not StepKind.TRAIN:  # train output goes to the terminal; every other command redirects (1.4)
        command += f" > {reference_log} 2>&1 "
    style = REFERENCE_STYLES.get(flavor, _DEFAULT_STYLE)
    text = f"{model_name} - {command}" if style.model_prefix else command
    if style.log_suffix:
        text += f" - {reference_log}"
    return text + style.end
