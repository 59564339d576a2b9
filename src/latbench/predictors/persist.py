"""Saving and loading predictors: the ``.lbp`` file.

An ``.lbp`` file is a zip archive with

* ``manifest.json``: ``format_version``, the predictor ``name`` and ``params``, the ``space``
  and ``devices`` it was fitted on, JSON metadata of the fitted state, and the ``libraries``
  that wrote it (latbench, numpy, scikit-learn, torch, python);
* one ``arrays/<key>.npy`` per fitted array, read with ``allow_pickle=False``;
* format 2 only, for a multi-device base fitted from data (``latbench predictor fit --devices
  all``, :func:`latbench.predictors.adapt.fit_base`): ``embed_prior`` in the manifest and its
  arrays as ``arrays/embed_prior.<key>.npy``, the prior of the few-shot method ``embed``
  learned from the sources' measurements (:mod:`latbench.predictors.fewshot_embed`). A file
  without a prior is still written as format 1, so older latbench versions read it; format-1
  files load as before (no prior: ``adapt`` then works as it did without one).

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
import zlib
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from latbench import __version__
from latbench._atomic import atomic_path
from latbench._validate import expected_number
from latbench.errors import PredictorError
from latbench.predictors.base import GRAPH_SPACE, PREDICTORS, Predictor

FORMAT_VERSION = 2
#: the format written when a predictor carries no embed prior (readable by older latbench)
BASE_FORMAT_VERSION = 1
#: array-name prefix of the stored embed prior
PRIOR_PREFIX = "embed_prior."
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


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in parameters (``n_estimators=np.int64(30)`` from a grid made
    with ``np.arange``) as the JSON numbers and lists they stand for."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def save(predictor: Predictor, path: str | os.PathLike[str]) -> None:
    """Write a fitted ``predictor`` to ``path`` (an ``.lbp`` zip).

    The file is written next to ``path`` and renamed over it: an interrupted or failed save
    leaves a previous file at ``path`` as it was, never a truncated one.
    """
    if not isinstance(predictor, Predictor):
        raise PredictorError(
            f"save({predictor!r:.80}, ...): got a {type(predictor).__name__}; expected a fitted "
            "latbench Predictor"
        )
    out = _output_path(path)
    predictor._check_fitted()
    meta, arrays = predictor._get_state()
    prior = getattr(predictor, "embed_prior_", None)
    prior_meta: dict[str, Any] | None = None
    if prior is not None:
        from latbench.predictors.fewshot_embed import prior_state

        prior_meta, prior_arrays = prior_state(prior)
        arrays = {**arrays, **{PRIOR_PREFIX + k: v for k, v in prior_arrays.items()}}
    manifest = {
        "format_version": BASE_FORMAT_VERSION if prior_meta is None else FORMAT_VERSION,
        "predictor": predictor.name,
        "params": predictor.get_params(),
        "space": predictor.space_,
        "devices": list(predictor.devices_),
        "floor_ms": float(getattr(predictor, "floor_ms_", 0.0)),
        "state": meta,
        "arrays": sorted(arrays),
        "libraries": library_versions(),
    }
    if prior_meta is not None:
        manifest["embed_prior"] = prior_meta
    coverage = getattr(predictor, "graph_coverage_", None)
    if coverage is not None:
        # JSON (kernel types, feature maxima); a reader without the key ignores it
        manifest["graph_coverage"] = coverage
    try:
        text = json.dumps(manifest, indent=1, sort_keys=True, default=_plain)
    except TypeError as exc:
        raise PredictorError(
            f"{predictor.name}: parameters are not JSON-serialisable: {exc}"
        ) from None
    blobs: dict[str, bytes] = {}
    for key, arr in arrays.items():
        a = np.asarray(arr)
        if a.dtype == object:
            raise PredictorError(f"{predictor.name}: array {key!r} has dtype object; not saved")
        buf = io.BytesIO()
        np.save(buf, a, allow_pickle=False)
        blobs[f"arrays/{key}.npy"] = buf.getvalue()
    try:
        with (
            atomic_path(out) as tmp,
            zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        ):
            zf.writestr(MANIFEST, text)
            for name, blob in blobs.items():
                zf.writestr(name, blob)
    except OSError as exc:
        raise PredictorError(
            f"cannot write predictor file {os.fspath(path)!r}: {exc.strerror or exc}"
        ) from None


def _output_path(path: Any) -> Path:
    """``path`` as a Path to write, or a :class:`PredictorError` naming it: a missing parent
    directory, a parent that is a file, or a directory is not a file that can be written."""
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise PredictorError(f"predictor path {path!r:.80}; expected a file path (.lbp)")
    p = os.fspath(path)
    if not p:
        raise PredictorError("predictor path ''; expected a file path (.lbp)")
    out = Path(p)
    if out.is_dir():
        raise PredictorError(f"predictor file {p!r} is a directory; expected a file path (.lbp)")
    parent = out.parent
    if not parent.exists():
        # a parent under a file: some ancestor is a file, not a directory
        for up in parent.parents:
            if up.exists():
                if not up.is_dir():
                    raise PredictorError(
                        f"predictor file {p!r}: {str(up)!r} is a file, not a directory; "
                        "expected a path in an existing directory"
                    )
                break
        raise PredictorError(
            f"predictor file {p!r}: directory {str(parent)!r} does not exist; create it first"
        )
    if not parent.is_dir():
        raise PredictorError(
            f"predictor file {p!r}: {str(parent)!r} is a file, not a directory; expected a "
            "path in an existing directory"
        )
    return out


def _check_versions(manifest: dict[str, Any], cls: type[Predictor], path: str) -> None:
    fv = manifest.get("format_version")
    if isinstance(fv, bool) or not isinstance(fv, int) or fv > FORMAT_VERSION or fv < 1:
        raise PredictorError(
            f"{path}: predictor file format {fv!r} is not supported by latbench {__version__} "
            f"(reads formats 1..{FORMAT_VERSION}); upgrade latbench or refit the predictor"
        )
    libs = manifest.get("libraries", {})
    if not isinstance(libs, dict):
        raise PredictorError(f"{path}: manifest 'libraries' is not a table")
    here = library_versions()
    written = str(libs.get("latbench", "0"))
    if "latbench" in libs and _major_minor(written) == (0, 0) and not written.startswith("0"):
        raise PredictorError(
            f"{path}: manifest libraries.latbench = {written!r}; expected a version such as "
            f"{__version__}"
        )
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


def _read_members(zf: zipfile.ZipFile, p: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The checked manifest and the arrays of an open ``.lbp`` zip."""
    try:
        manifest = json.loads(zf.read(MANIFEST))
    except KeyError:
        raise PredictorError(f"{p}: no {MANIFEST}; not a latbench predictor file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PredictorError(f"{p}: corrupt {MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict):
        raise PredictorError(f"{p}: corrupt {MANIFEST}: expected a JSON object")
    name = manifest.get("predictor")
    if not isinstance(name, str) or name not in PREDICTORS:
        raise PredictorError(
            f"{p}: unknown predictor {name!r}; expected one of {', '.join(PREDICTORS.names())}"
        )
    _check_versions(manifest, PREDICTORS.get(name), p)
    keys = manifest.get("arrays", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise PredictorError(f"{p}: corrupt {MANIFEST}: 'arrays' is not a list of names")
    arrays: dict[str, np.ndarray] = {}
    for key in keys:
        try:
            with zf.open(f"arrays/{key}.npy") as fh:
                arrays[key] = np.load(io.BytesIO(fh.read()), allow_pickle=False)
        except KeyError:
            raise PredictorError(f"{p}: array {key!r} listed but missing") from None
        except ValueError as exc:
            raise PredictorError(f"{p}: array {key!r} unreadable: {exc}") from None
    return manifest, arrays


def _as_written(cls: type[Predictor], params: dict[str, Any]) -> dict[str, Any]:
    """JSON has no tuples: a list given for a parameter whose default is a tuple (``members``)
    comes back as a tuple, so that ``get_params()`` of the loaded model equals the saved one's."""
    import inspect

    try:
        defaults = {k: v.default for k, v in inspect.signature(cls.__init__).parameters.items()}
    except (TypeError, ValueError):
        return params
    out = dict(params)
    for k, v in params.items():
        if isinstance(v, list) and isinstance(defaults.get(k), tuple):
            out[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
    return out


def _coverage_ok(coverage: Any) -> bool:
    """Whether a manifest's ``graph_coverage`` has the shape :func:`kernel_coverage` writes."""
    if not isinstance(coverage, dict):
        return False
    types, top = coverage.get("types"), coverage.get("max")
    return (
        isinstance(types, list)
        and all(isinstance(t, str) for t in types)
        and isinstance(top, dict)
        and all(isinstance(k, str) and expected_number(v) is None for k, v in top.items())
    )


def _self_check(pred: Predictor, p: str) -> None:
    """Predict one architecture of the space on every device: weights of the wrong shape or
    type (an edited file) fail here, with the file named, not at the user's first predict."""
    if pred.space_ == GRAPH_SPACE:
        return
    from latbench.errors import LatbenchError
    from latbench.spaces import get_space

    try:
        arch = get_space(pred.space_).sample(1, seed=0)[0]
    except LatbenchError:  # an unknown space: the first predict says so, naming it
        return
    try:
        for dev in pred.devices_:
            out = pred.predict([arch], device=dev)
            if out.shape != (1,) or not np.isfinite(out).all():
                raise ValueError(f"predicted {out!r} for {arch} on {dev}")
    except PredictorError as exc:
        raise PredictorError(f"{p}: the loaded predictor does not work: {exc}") from None
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, RuntimeError) as exc:
        raise PredictorError(
            f"{p}: the loaded predictor does not work ({type(exc).__name__}: {exc}); the file "
            "was edited or damaged; refit and save it again"
        ) from None


def load(path: str | os.PathLike[str]) -> Predictor:
    """Read a predictor saved by :func:`save`; it is fitted and ready to predict."""
    import latbench.predictors  # noqa: F401  (registers the built-in predictors)

    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise PredictorError(f"predictor path {path!r:.80}; expected an .lbp file path")
    p = os.fspath(path)
    try:
        zf = zipfile.ZipFile(p)
    except FileNotFoundError:
        raise PredictorError(f"predictor file {p!r} does not exist") from None
    except IsADirectoryError:
        raise PredictorError(
            f"predictor file {p!r} is a directory; expected an .lbp file"
        ) from None
    except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
        # NotImplementedError: a header that asks for a zip version zipfile lacks
        raise PredictorError(f"{p}: not a latbench predictor file (.lbp zip): {exc}") from None
    try:
        with zf:
            manifest, arrays = _read_members(zf, p)
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError) as exc:
        # a member whose CRC or compressed stream is broken: a damaged copy or download (a
        # flipped header byte reads as a compression method or zip version zipfile lacks)
        raise PredictorError(f"{p}: the file is damaged ({exc}); copy or save it again") from None
    name = manifest["predictor"]
    cls = PREDICTORS.get(name)
    params = manifest.get("params", {})
    if not isinstance(params, dict):
        raise PredictorError(f"{p}: corrupt {MANIFEST}: 'params' is not a table")
    params = _as_written(cls, params)
    try:
        pred = cls(**params)
    except TypeError as exc:
        raise PredictorError(f"{p}: parameters {sorted(params)} do not fit {name}: {exc}") from None
    space, devices, floor = (
        manifest.get("space"),
        manifest.get("devices"),
        manifest.get("floor_ms", 0.0),
    )
    if not isinstance(space, str) or not space:
        raise PredictorError(f"{p}: corrupt {MANIFEST}: 'space' = {space!r}; expected a space name")
    if (
        not isinstance(devices, list)
        or not devices
        or not all(isinstance(d, str) and d for d in devices)
    ):
        raise PredictorError(
            f"{p}: corrupt {MANIFEST}: 'devices' = {devices!r:.80}; expected a list of device names"
        )
    if expected_number(floor, low=0) is not None:
        raise PredictorError(
            f"{p}: corrupt {MANIFEST}: 'floor_ms' = {floor!r}; expected a number >= 0"
        )
    pred.space_ = space
    pred.devices_ = list(devices)
    pred.floor_ms_ = float(floor)
    coverage = manifest.get("graph_coverage")
    if coverage is not None:
        if not _coverage_ok(coverage):
            raise PredictorError(
                f"{p}: corrupt {MANIFEST}: 'graph_coverage' = {coverage!r:.80}; expected "
                "{'types': [names], 'max': {feature: number}}"
            )
        pred.graph_coverage_ = coverage
    prior_arrays = {
        k[len(PRIOR_PREFIX) :]: v for k, v in arrays.items() if k.startswith(PRIOR_PREFIX)
    }
    own = {k: v for k, v in arrays.items() if not k.startswith(PRIOR_PREFIX)}
    state = manifest.get("state", {})
    if not isinstance(state, dict):
        raise PredictorError(f"{p}: corrupt {MANIFEST}: 'state' is not a table")
    try:
        pred._set_state(dict(state), own)
    except PredictorError as exc:
        raise PredictorError(f"{p}: inconsistent {name} state: {exc}") from None
    except KeyError as exc:
        raise PredictorError(f"{p}: corrupt {name} state: {exc} is missing") from None
    except (TypeError, ValueError, IndexError, AttributeError) as exc:
        raise PredictorError(f"{p}: corrupt {name} state: {exc}") from None
    _self_check(pred, p)
    prior_meta = manifest.get("embed_prior")
    if prior_meta is not None:
        from latbench.predictors.fewshot_embed import prior_from_state

        if not isinstance(prior_meta, dict):
            raise PredictorError(f"{p}: corrupt {MANIFEST}: 'embed_prior' is not a table")
        try:
            # any multi-device model can carry one; it is not part of the model's own state
            vars(pred)["embed_prior_"] = prior_from_state(prior_meta, prior_arrays)
        except (PredictorError, KeyError, ValueError) as exc:
            raise PredictorError(f"{p}: stored embed prior unreadable: {exc}") from None
    return pred
