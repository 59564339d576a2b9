"""Shared by the tests of old predictor files: rewrite a saved ``.lbp`` as an older one."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def rewrite_lbp(
    src: Path, dst: Path, manifest: Callable[[dict[str, Any]], None], drop: tuple[str, ...] = ()
) -> None:
    """Copy the ``.lbp`` zip ``src`` to ``dst``, editing its manifest and leaving out ``drop``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            if item in drop:
                continue
            blob = zin.read(item)
            if item == "manifest.json":
                m = json.loads(blob)
                manifest(m)
                blob = json.dumps(m).encode()
            zout.writestr(item, blob)
