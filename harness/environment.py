"""What a run ran on (harness, Paddle build, CPU, GPUs, Python, commit, host, start time), for reports and history."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from harness import __version__

__all__ = ["ENVIRONMENT_FILE", "RunEnvironment", "collect_environment", "read_environment", "write_environment"]

# Written next to the model folders of a run (test_tipc/output/environment.json); reports read it back.
ENVIRONMENT_FILE: Final = "environment.json"
_PROBE_TIMEOUT_S: Final = 10.0
_PADDLE_DISTS: Final = ("paddlepaddle-gpu", "paddlepaddle")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunEnvironment:
    harness: str = ""
    paddle: str = ""  # "3.1.0 (CPU)", "3.1.0 (CUDA)" or "not installed"
    cpu: str = ""
    gpus: str = ""  # "2 x NVIDIA A100-SXM4-40GB" or "none"
    python: str = ""
    commit: str = ""
    hostname: str = ""
    started: str = ""  # ISO 8601, UTC

    def key(self) -> str:
        """What history groups results by: the same build on the same kind of machine (not host or time)."""
        return f"paddle {self.paddle}; {self.gpus or 'no GPU'}; python {self.python}"

    def rows(self) -> tuple[tuple[str, str], ...]:
        labels = (
            ("harness", "harness version"),
            ("paddle", "Paddle"),
            ("cpu", "CPU"),
            ("gpus", "GPUs"),
            ("python", "Python"),
            ("commit", "commit"),
            ("hostname", "host"),
            ("started", "started"),
        )
        return tuple((label, str(getattr(self, name))) for name, label in labels if getattr(self, name))

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RunEnvironment:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: str(v) for k, v in data.items() if k in names})


def collect_environment(root: Path, *, started: datetime.datetime | None = None) -> RunEnvironment:
    """Probe this host without importing paddle (package metadata tells the build: paddlepaddle-gpu is CUDA)."""
    when = started or datetime.datetime.now(datetime.UTC)
    return RunEnvironment(
        harness=__version__,
        paddle=_paddle(),
        cpu=_cpu_model(),
        gpus=_gpus(),
        python=platform.python_version(),
        commit=_commit(root),
        hostname=socket.gethostname(),
        started=when.replace(microsecond=0).isoformat(),
    )


def _paddle() -> str:
    for dist in _PADDLE_DISTS:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return f"{version} ({'CUDA' if dist.endswith('-gpu') else 'CPU'})"
    return "not installed"


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    if not names:
        return platform.machine()
    return f"{names[0]} ({len(names)} logical CPUs)"


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _gpus() -> str:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "none"
    names = [line.strip() for line in _run([exe, "--query-gpu=name", "--format=csv,noheader"]).splitlines() if line]
    if not names:
        return "none"
    distinct = list(dict.fromkeys(names))
    return ", ".join(f"{names.count(name)} x {name}" for name in distinct)


def _commit(root: Path) -> str:
    # CI checkouts may be shallow or detached; GITHUB_SHA names the commit either way.
    git = shutil.which("git")
    commit = _run([git, "rev-parse", "HEAD"], cwd=root) if git and root.is_dir() else ""
    if commit and git and _run([git, "status", "--porcelain", "--untracked-files=no"], cwd=root):
        commit += "+dirty"
    return commit or os.environ.get("GITHUB_SHA", "")


def write_environment(path: Path, env: RunEnvironment) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(env.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_environment(path: Path) -> RunEnvironment | None:
    """The environment a run wrote, or None when there is none (or it is not readable JSON)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return RunEnvironment.from_json(data) if isinstance(data, dict) else None
