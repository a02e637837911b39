"""TIPC ``.txt`` config -> ``TipcConfig``: lines with their file and line number, layout and role checks."""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import stat
from pathlib import Path

from harness.errors import ConfigError

__all__ = [
    "Entry",
    "Layout",
    "TipcConfig",
    "load_config",
    "parse_config_text",
    "physical_lines",
    "split_entries",
]

# First headers of PTQ configs (test_ptq_inference_python.sh input; the train/infer script runs nothing for them)
_PTQ_HEADERS = ("ptq_params", "kl_quant_params")
# Logical lines of an eval_params header one off the full layout's line 23
_FULL_EVAL_SHIFTED = (22, 24)
_HEADER = re.compile(r"^=+\s*([A-Za-z0-9_]+)\s*=+$")
# A file bigger than this is not a TIPC config; refuse it before reading it all.
_MAX_BYTES = 1 << 20


class Layout(enum.StrEnum):
    """Line-role maps used in the wild (see test_tipc/docs/config_format.md)."""

    TUTORIAL = "tutorial"  # PaddlePaddle/models Step6: train/eval/infer params at lines 1/16/19, 32 lines
    FULL = "full"  # PaddleClas / PaddleOCR / PaddleDetection / Paddle3D: 1/23/27, 51+ lines
    PTQ = "ptq"  # ptq_params layout, input of test_ptq_inference_python.sh (runs nothing here)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One non-empty line. ``index`` is the 1-based position among non-empty lines (the scripts' ``lines[index-1]``)."""

    index: int
    line: int  # physical 1-based line in the file, for error messages
    text: str  # the line without its line ending and trailing whitespace

    @property
    def header(self) -> str | None:
        """Section name when the line is a ``=====name=====`` header."""
        match = _HEADER.match(self.text.strip())
        return match.group(1) if match else None

    @property
    def key(self) -> str:
        """Text before the first ``:`` (whitespace-trimmed)."""
        return self.text.split(":", 1)[0].strip()

    @property
    def value(self) -> str:
        """Text after the first ``:`` (whitespace-trimmed). Values may contain ``:`` (URLs, ``-o a=b:c``)."""
        parts = self.text.split(":", 1)
        return parts[1].strip() if len(parts) == 2 else ""

    @property
    def bash_value(self) -> str:
        """What the reference scripts' ``func_parser_value`` returns: the field between the 1st and 2nd ``:``."""
        fields = self.text.split(":")
        return fields[1].strip() if len(fields) > 1 else ""

    @property
    def has_colon(self) -> bool:
        return ":" in self.text


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TipcConfig:
    path: str
    entries: tuple[Entry, ...]
    layout: Layout

    def at(self, index: int) -> Entry:
        """The entry at 1-based logical line ``index`` (what the scripts call ``lines[index-1]``)."""
        if 1 <= index <= len(self.entries):
            return self.entries[index - 1]
        last = self.entries[-1].line if self.entries else 0
        msg = f"config ends after {len(self.entries)} lines; the {self.layout} layout needs line {index}"
        raise ConfigError(self.path, last, msg)

    def has(self, index: int) -> bool:
        return 1 <= index <= len(self.entries)

    def error(self, index: int, msg: str) -> ConfigError:
        line = self.entries[index - 1].line if self.has(index) else 0
        return ConfigError(self.path, line, msg)

    def section(self, name: str) -> tuple[Entry, ...]:
        """The entries of a named section (after its header, up to the next header); empty if absent."""
        out: list[Entry] = []
        inside = False
        for entry in self.entries:
            header = entry.header
            if header is not None:
                inside = header == name
                continue
            if inside:
                out.append(entry)
        return tuple(out)

    def section_start(self, name: str) -> int | None:
        """1-based logical index of a section header, or None."""
        for entry in self.entries:
            if entry.header == name:
                return entry.index
        return None

    @property
    def model_name(self) -> str:
        return self.at(2).value


def _decode(path: str, data: bytes) -> str:
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ConfigError(path, line, "binary data (NUL byte): not a TIPC text config")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        msg = f"not valid UTF-8 text (byte 0x{data[exc.start]:02x}): not a TIPC text config"
        raise ConfigError(path, line, msg) from None


def _detect_layout(path: str, entries: tuple[Entry, ...]) -> Layout:
    if not entries:
        raise ConfigError(path, 1, "empty config: expected a '===train_params===' header on line 1")
    first = entries[0].header
    if first in _PTQ_HEADERS:
        return Layout.PTQ
    if first != "train_params":
        msg = f"expected a '=====train_params=====' header on line 1, found {entries[0].text[:60]!r}"
        raise ConfigError(path, entries[0].line, msg)
    # The eval header's position tells the layouts apart: logical line 16 (tutorial) or 23 (full).
    for index, layout in ((16, Layout.TUTORIAL), (23, Layout.FULL)):
        if len(entries) >= index and entries[index - 1].header == "eval_params":
            return layout
    for entry in entries:
        if entry.header == "eval_params" and entry.index in _FULL_EVAL_SHIFTED:
            # One line missing or extra above the eval header: still the full layout, read by position (the flavor's
            # anchors decide whether that is an error; PaddleOCR's script runs such configs).
            return Layout.FULL
        if entry.header == "eval_params":
            msg = (
                f"'eval_params' header is on logical line {entry.index}; a TIPC config has it on line 16 "
                "(tutorial layout) or 23 (full layout): a line is missing or extra above it"
            )
            raise ConfigError(path, entry.line, msg)
    if _is_ptq_without_header(entries):
        return Layout.PTQ
    raise ConfigError(path, entries[-1].line, "no '=====eval_params=====' header: not a train_infer_python config")


def physical_lines(text: str) -> list[str]:
    """Lines as ``grep -n`` and bash's ``IFS=$'\\n'`` count them: split on ``\\n`` only, a ``\\r`` before it dropped.

    ``str.splitlines`` also breaks at ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028/2029 and a lone ``\\r``,
    which would shift every later line number away from what an editor shows.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start another
    return [line.removesuffix("\r") for line in lines]


def _is_control(ch: str) -> bool:
    # C0 and C1 controls (tab excepted) and the Unicode line/paragraph separators: none belongs in a config line.
    code = ord(ch)
    return (code < 32 and ch != "\t") or 0x7F <= code <= 0x9F or ch in "\u2028\u2029"


def _is_ptq_without_header(entries: tuple[Entry, ...]) -> bool:
    """A PTQ config written under a train_params header (PaddleOCR's KL configs): one section, a quant export."""
    keys = {entry.key for entry in entries}
    headers = [entry.header for entry in entries if entry.header is not None]
    return headers == ["train_params"] and {"infer_export", "infer_quant"} <= keys


def split_entries(path: str, text: str) -> tuple[Entry, ...]:
    """Text -> entries; blank lines are dropped as the reference scripts drop them, physical lines are kept."""
    entries: list[Entry] = []
    for number, raw in enumerate(physical_lines(text), start=1):
        stripped = raw.rstrip(" \t")
        bad = next((ch for ch in stripped if _is_control(ch)), None)
        if bad is not None:
            msg = f"control character U+{ord(bad):04X} in line: not a TIPC text config"
            raise ConfigError(path, number, msg)
        if not stripped.strip():
            continue
        entries.append(Entry(index=len(entries) + 1, line=number, text=stripped))
    return tuple(entries)


def parse_config_text(path: str, text: str) -> TipcConfig:
    """Split text into entries and detect the layout."""
    entries = split_entries(path, text)
    return TipcConfig(path=path, entries=entries, layout=_detect_layout(path, entries))


def load_config(path: str | Path) -> TipcConfig:
    """Read and parse a TIPC config; every problem is a ``ConfigError`` naming the file and line."""
    name = str(path)
    file = Path(path)
    try:
        _check_regular(name, os.stat(file).st_mode)
        # O_NONBLOCK: if the path was swapped for a FIFO after the check, open() must not wait for a writer.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            _check_regular(name, os.fstat(handle.fileno()).st_mode)
            data = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(name, 0, "no such config file") from None
    except OSError as exc:
        raise ConfigError(name, 0, f"cannot read config: {exc.strerror or exc}") from None
    if len(data) > _MAX_BYTES:
        raise ConfigError(name, 0, f"config is larger than {_MAX_BYTES} bytes: not a TIPC text config")
    return parse_config_text(name, _decode(name, data))


def _check_regular(name: str, mode: int) -> None:
    """Refuse anything but a regular file before reading it: a FIFO would block, a device never ends."""
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise ConfigError(name, 0, "is a directory, not a config file")
    kind = (
        "a FIFO" if stat.S_ISFIFO(mode)
        else "a character device" if stat.S_ISCHR(mode)
        else "a block device" if stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise ConfigError(name, 0, f"is {kind}, not a regular config file")
