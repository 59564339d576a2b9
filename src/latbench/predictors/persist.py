"""Saving and loading predictors: the ``.lbp`` file.

An ``.lbp`` file is a zip archive with

* ``manifest.json``: ``format_version``, the predictor ``name`` and ``params``, the ``space``
  and ``devices`` it was fitted on, JSON metadata of the fitted state, and the ``libraries``
  that wrote it (latbench, numpy, scikit-learn, torch, python);
* one ``arrays/<key>.npy`` per fitted array, read with ``allow_pickle=False``.

Loading never runs code from the file: no pickle, no import by name other than the registry
lookup of the predictor ``name``. Every model stores what it needs to predict in plain arrays
(ridge: coefficients; trees: the node arrays, walked by latbench's own numpy code, so a new
scikit-learn cannot break an old file; the GCN: its ``state_dict`` tensors), so compatibility
depends on the file format and, for the GCN, on torch's major version only. A file from a newer
format, a newer latbench, or a torch major the weights were not written for fails with a
:class:`~latbench.errors.PredictorError` naming the versions on both sides.
"""

from __future__ import annotations

import io
import json
import os
import platform
import zipfile
from importlib import metadata
from typing import Any

import numpy as np

from latbench import __version__
from latbench.errors import PredictorError
from latbench.predictors.base import PREDICTORS, Predictor

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LIBRARIES = ("latbench", "numpy", "scikit-learn", "torch")


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour a saved predictor depends on."""
    out = {"latbench": __version__, "python": platform.python_version()}
    for lib in LIBRARIES[1:]:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def _major_minor(v: str) -> tuple[int, int]:
    parts = v.split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return (0, 0)


def save(predictor: Predictor, path: str | os.PathLike[str]) -> None:
    """Write a fitted ``predictor`` to ``path`` (an ``.lbp`` zip)."""
    predictor._check_fitted()
    meta, arrays = predictor._get_state()
    manifest = {
        "format_version": FORMAT_VERSION,
        "predictor": predictor.name,
        "params": predictor.get_params(),
        "space": predictor.space_,
        "devices": list(predictor.devices_),
        "floor_ms": float(getattr(predictor, "floor_ms_", 0.0)),
        "state": meta,
        "arrays": sorted(arrays),
        "libraries": library_versions(),
    }
    try:
        text = json.dumps(manifest, indent=1, sort_keys=True)
    except TypeError as exc:
        raise PredictorError(
            f"{predictor.name}: parameters are not JSON-serialisable: {exc}"
        ) from None
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, text)
        for key, arr in arrays.items():
            a = np.asarray(arr)
            if a.dtype == object:
                raise PredictorError(f"{predictor.name}: array {key!r} has dtype object; not saved")
            buf = io.BytesIO()
            np.save(buf, a, allow_pickle=False)
            zf.writestr(f"arrays/{key}.npy", buf.getvalue())


def _check_versions(manifest: dict[str, Any], cls: type[Predictor], path: str) -> None:
    fv = manifest.get("format_version")
    if not isinstance(fv, int) or fv > FORMAT_VERSION or fv < 1:
        raise PredictorError(
            f"{path}: predictor file format {fv!r} is not supported by latbench {__version__} "
            f"(reads formats 1..{FORMAT_VERSION}); upgrade latbench or refit the predictor"
        )
    libs = manifest.get("libraries", {})
    if not isinstance(libs, dict):
        raise PredictorError(f"{path}: manifest 'libraries' is not a table")
    here = library_versions()
    written = str(libs.get("latbench", "0"))
    if _major_minor(written) > _major_minor(__version__):
        raise PredictorError(
            f"{path}: written by latbench {written}, newer than this latbench {__version__}; "
            "upgrade latbench to load it"
        )
    for lib in cls.weight_libraries:
        want = str(libs.get(lib, "unknown"))
        have = here.get(lib, "not installed")
        if _major_minor(want)[0] != _major_minor(have)[0]:
            raise PredictorError(
                f"{path}: the {manifest.get('predictor')} weights were written with {lib} {want}; "
                f"this environment has {lib} {have} (major versions differ); install {lib} "
                f"{want.split('.')[0]}.x or refit the predictor"
            )


def load(path: str | os.PathLike[str]) -> Predictor:
    """Read a predictor saved by :func:`save`; it is fitted and ready to predict."""
    import latbench.predictors  # noqa: F401  (registers the built-in predictors)

    p = os.fspath(path)
    try:
        zf = zipfile.ZipFile(p)
    except FileNotFoundError:
        raise PredictorError(f"predictor file {p!r} does not exist") from None
    except zipfile.BadZipFile:
        raise PredictorError(f"{p}: not a latbench predictor file (.lbp zip)") from None
    with zf:
        try:
            manifest = json.loads(zf.read(MANIFEST))
        except KeyError:
            raise PredictorError(f"{p}: no {MANIFEST}; not a latbench predictor file") from None
        except json.JSONDecodeError as exc:
            raise PredictorError(f"{p}: corrupt {MANIFEST}: {exc}") from None
        if not isinstance(manifest, dict):
            raise PredictorError(f"{p}: corrupt {MANIFEST}: expected a JSON object")
        name = manifest.get("predictor")
        if not isinstance(name, str) or name not in PREDICTORS:
            raise PredictorError(
                f"{p}: unknown predictor {name!r}; expected one of {', '.join(PREDICTORS.names())}"
            )
        cls = PREDICTORS.get(name)
        _check_versions(manifest, cls, p)
        arrays: dict[str, np.ndarray] = {}
        for key in manifest.get("arrays", []):
            try:
                with zf.open(f"arrays/{key}.npy") as fh:
                    arrays[key] = np.load(io.BytesIO(fh.read()), allow_pickle=False)
            except KeyError:
                raise PredictorError(f"{p}: array {key!r} listed but missing") from None
            except ValueError as exc:
                raise PredictorError(f"{p}: array {key!r} unreadable: {exc}") from None
    params = manifest.get("params", {})
    try:
        pred = cls(**params)
    except TypeError as exc:
        raise PredictorError(f"{p}: parameters {sorted(params)} do not fit {name}: {exc}") from None
    pred.space_ = str(manifest["space"])
    pred.devices_ = [str(d) for d in manifest["devices"]]
    pred.floor_ms_ = float(manifest.get("floor_ms", 0.0))
    pred._set_state(dict(manifest.get("state", {})), arrays)
    return pred
