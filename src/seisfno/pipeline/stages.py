"""Stages that resume: a :class:`Stage` is a name, the settings its result depends on, a
function that computes it and the files it writes; a :class:`StageRunner` runs stages into a
directory under these rules.

* ``DIR/<name>.json`` holds a finished stage's result and its ``config``. A stage whose JSON
  holds the current configuration is kept, not recomputed.
* When the configuration differs (or was not recorded), the stage is computed again; stderr
  says which setting changed, and its old outputs and JSON are moved to
  ``DIR/superseded/<time>/``, never deleted. Later stages built on it see the change too when
  their configuration contains it (see :func:`seisfno.pipeline.reproduce.stage_configs`).
* ``DIR/<name>.running.json`` records the configuration of a stage being computed. After an
  interruption (a SIGKILL included) a rerun with the same configuration resumes from the
  stage's partial outputs (its ``run`` must resume them); with another, it starts again.
* A stage runs only when the stages it ``needs`` are done with their current configuration.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import SeisfnoError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One stage of a resumable pipeline (those of :func:`seisfno.pipeline.reproduce`).

    Attributes
    ----------
    name : str
        The result is ``DIR/<name>.json``.
    config : dict
        JSON-able settings the result depends on (stored with it; a change means recompute).
    run : callable
        ``run() -> dict``: computes the stage, writes its ``outputs``, returns its result.
    outputs : tuple of str
        Files and directories under ``DIR`` the stage writes (moved aside when it is redone).
    needs : tuple of str
        Stages whose results ``run`` reads (they must be done with their current config).
    """

    name: str
    config: dict
    run: Callable[[], dict]
    outputs: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # a torn or foreign file: no configuration, so it is redone


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(obj, indent=2, default=str))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_changes(old: dict | None, new: dict) -> str:
    """``"train.n_val: 6 -> 8, ..."``: the settings that differ (``old`` None: not recorded)."""
    if not old:
        return "no configuration recorded with it"
    a, b = _flat(old), _flat(new)
    diffs = [f"{k}: {a.get(k, 'unset')!r} -> {b.get(k, 'unset')!r}"
             for k in sorted(set(a) | set(b)) if a.get(k, "unset") != b.get(k, "unset")]
    return ", ".join(diffs[:4]) + (f" and {len(diffs) - 4} more" if len(diffs) > 4 else "")


def _say(msg: str) -> None:
    print(f"seisfno reproduce: {msg}", file=sys.stderr, flush=True)


class StageRunner:
    """Runs stages into ``out`` under the resume rules of the module docstring.

    ``say`` prints what is redone and why (default: one line on stderr). One runner moves the
    outputs it supersedes into one new ``superseded/<time>-<random>/`` folder.
    """

    def __init__(self, out: Path, say: Callable[[str], None] = _say) -> None:
        self.out, self.say = out, say
        self._superseded: Path | None = None

    def result(self, stage: Stage) -> dict | None:
        """The stage's stored result when it was made with its current configuration."""
        res = _read_json(self.out / f"{stage.name}.json")
        return res if res is not None and res.get("config") == stage.config else None

    def run(self, stage: Stage, stages: dict[str, Stage]) -> dict:
        """The stage's result: the stored one when still valid, computed otherwise.

        ``stages`` maps every stage's name to its :class:`Stage` (for ``stage.needs``).
        """
        self._check_needs(stage, stages)
        kept = self._prepare(stage)
        if kept is not None:
            log.info("stage %s: done before with this configuration, kept", stage.name)
            return kept
        marker = self.out / f"{stage.name}.running.json"
        write_json(marker, {"config": stage.config})
        log.info("stage %s ...", stage.name)
        t0 = time.perf_counter()
        res = stage.run()
        res["config"] = stage.config
        res["stage_seconds"] = round(time.perf_counter() - t0, 2)
        write_json(self.out / f"{stage.name}.json", res)
        marker.unlink()
        log.info("stage %s: %.1f s", stage.name, res["stage_seconds"])
        return res

    def _check_needs(self, stage: Stage, stages: dict[str, Stage]) -> None:
        for need in stage.needs:
            if self.result(stages[need]) is None:
                raise SeisfnoError(
                    f"stage {stage.name!r} needs stage {need!r} done with this configuration "
                    f"({self._why(stages[need])}); include it in the stages to run")

    def _why(self, stage: Stage) -> str:
        res = _read_json(self.out / f"{stage.name}.json")
        return "not run yet" if res is None else config_changes(res.get("config"), stage.config)

    def _prepare(self, stage: Stage) -> dict | None:
        """The valid stored result, or None after clearing the way for a (re)computation."""
        name = stage.name
        res = _read_json(self.out / f"{name}.json")
        if res is not None:
            if res.get("config") == stage.config:
                (self.out / f"{name}.running.json").unlink(missing_ok=True)  # killed at the end
                return res
            self.say(f"stage {name}: configuration changed "
                     f"({config_changes(res.get('config'), stage.config)}); recomputing it")
            self._supersede(stage, f"{name}.json")
            return None
        marker = _read_json(self.out / f"{name}.running.json")
        if marker is not None and marker.get("config") == stage.config:
            self.say(f"stage {name}: resuming the interrupted run")
        elif marker is not None:
            self.say(f"stage {name}: interrupted with another configuration "
                     f"({config_changes(marker.get('config'), stage.config)}); starting again")
            self._supersede(stage, f"{name}.running.json")
        elif any((self.out / p).exists() for p in stage.outputs):
            self.say(f"stage {name}: outputs without a record of their configuration; "
                     "starting again")
            self._supersede(stage)
        return None

    def _supersede(self, stage: Stage, *extra: str) -> None:
        """Move the stage's outputs (and ``extra`` files) to ``superseded/<time>/``."""
        present = [p for p in (*extra, *stage.outputs) if (self.out / p).exists()]
        if not present:
            return
        if self._superseded is None:
            (self.out / "superseded").mkdir(exist_ok=True)
            self._superseded = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"),
                                                     dir=self.out / "superseded"))
        for p in present:
            os.replace(self.out / p, self._superseded / p)
        self.say(f"stage {stage.name}: old outputs moved to "
                 f"{self._superseded.relative_to(self.out)}/")


__all__ = ["Stage", "StageRunner", "config_changes", "write_json"]
