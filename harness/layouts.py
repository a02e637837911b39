"""Role maps of the TIPC layouts: which logical line holds what, and the anchor keys that prove it.

Roles are positional (that is how real configs are written: a flag line's key is the CLI flag). Anchor lines
have fixed keys, so a missing or extra line above them shows up as a wrong key, and planning stops with an
error naming the file and the line rather than building a silently wrong command.
"""

from __future__ import annotations

from harness.config import Layout, TipcConfig
from harness.errors import ConfigError

__all__ = ["ANCHORS", "MIN_LINES", "check_layout"]

# logical line -> accepted keys (a header line is written as "=name=")
ANCHORS: dict[Layout, dict[int, tuple[str, ...]]] = {
    Layout.TUTORIAL: {
        1: ("=train_params=",),
        2: ("model_name",),
        3: ("python",),
        4: ("gpu_list",),
        10: ("train_model_name",),
        13: ("trainer",),
        16: ("=eval_params=",),
        17: ("eval",),
        19: ("=infer_params=",),
        22: ("norm_export",),
        24: ("train_model", "infer_model"),
        25: ("infer_export",),
        27: ("inference",),
    },
    Layout.FULL: {
        1: ("=train_params=",),
        2: ("model_name",),
        3: ("python",),
        4: ("gpu_list",),
        11: ("train_model_name",),
        15: ("trainer",),
        23: ("=eval_params=",),
        24: ("eval",),
        27: ("=infer_params=",),
        30: ("norm_export",),
        37: ("infer_model",),
        38: ("infer_export",),
        40: ("inference",),
    },
}
# Extra anchors for this project's own flavor, whose configs we write. The reference flavors get none beyond the
# layout's: their scripts read those lines by position whatever the key, and so does --quirks.
FLAVOR_ANCHORS: dict[str, dict[int, tuple[str, ...]]] = {
    "harness": {
        17: ("pact_train",),
        18: ("fpgm_train",),
        19: ("distill_train",),
        31: ("quant_export",),
        32: ("fpgm_export",),
        33: ("distill_export",),
        34: ("kl_quant",),
    },
    "paddledetection": {
        11: ("trained_model_name", "train_model_name"),
        36: ("kl_quant_export",),
        37: ("##",),
        38: ("infer_mode",),
        39: ("infer_quant",),
    },
    "paddlevideo": {
        47: ("--model_file",),
    },
    "paddleseg": {
        27: ("=export_params=",),
        30: ("norm_export",),
        36: ("=infer_params=",),
        37: ("infer_model",),
        38: ("infer_export",),
        40: ("inference",),
    },
}
# Flavors whose configs may stop after the eval section (PaddleGAN's train-only configs): anchors from this line
# on are checked only where the config has them, and the config needs only this many lines.
FLAVOR_SHORT: dict[str, int] = {"paddlegan": 26}
FLAVOR_ANCHORS["paddlegan"] = {37: ("train_model", "infer_model")}
# PaddleOCR's script reads every line by position whatever its key (cfg:37 is infer_model or train_model) and
# runs configs with a line missing or extra above eval_params: anchors stop before the eval section.
FLAVOR_ANCHORS["paddleocr"] = {index: () for index in (23, 24, 27, 30, 37, 38, 40)}
# The last line each layout reads (the tutorial script reads lines 1-32; the full layout's line 51 is optional).
MIN_LINES: dict[Layout, int] = {Layout.TUTORIAL: 32, Layout.FULL: 50}


def check_layout(config: TipcConfig, flavor: str) -> None:
    """Raise ConfigError at the first anchor line whose key is not what the layout puts there."""
    anchors = {**ANCHORS.get(config.layout, {}), **FLAVOR_ANCHORS.get(flavor, {})}
    short = FLAVOR_SHORT.get(flavor)
    for index in sorted(anchors):
        expected = anchors[index]
        shown = " or ".join(f"'{e.strip('=')}' header" if e.startswith("=") else f"'{e}:'" for e in expected)
        if not expected or (short is not None and index > short and not config.has(index)):
            continue
        if not config.has(index):
            last = config.entries[-1].line if config.entries else 0
            msg = f"config ends at line {last}; the {config.layout} layout needs {shown} on logical line {index}"
            raise ConfigError(config.path, last, msg)
        entry = config.at(index)
        header = entry.header
        found = f"={header}=" if header is not None else entry.key
        if found not in expected:
            what = f"header {header!r}" if header is not None else repr(entry.text[:60])
            msg = f"expected {shown} here (logical line {index} of the {config.layout} layout), found {what}"
            if index > 1 and header is None and not entry.has_colon:
                msg += "; a line without ':' is not a key:value line"
            raise ConfigError(config.path, entry.line, msg)
        if header is None and not entry.value and index in (2, 3, 4, 15 if config.layout is Layout.FULL else 13):
            raise ConfigError(config.path, entry.line, f"{entry.key} needs a value")
    minimum = MIN_LINES.get(config.layout, 0) if short is None else short
    if len(config.entries) < minimum:
        last = config.entries[-1].line
        msg = f"config has {len(config.entries)} lines; the {config.layout} layout reads {minimum}"
        raise ConfigError(config.path, last, msg)
