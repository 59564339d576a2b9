"""Inference runtimes behind one interface: onnxruntime, LiteRT (``ai-edge-litert``), torch.

``RUNTIMES.get(name)().load(model, threads=..., batch=..., options=..., seed=...)`` returns a
:class:`Session` whose ``run()`` performs exactly one inference on inputs generated once, from the
model's signature, with a seeded generator; ``input_shapes``, ``version`` and ``settings`` (the
effective settings, read back from the runtime where it allows) go into the measurement record.
``profile_ops(runs)`` returns a per-operator table (``op``, ``name``, ``time_ms``, ``share``) where
the runtime has a profiler.

Each runtime imports its package lazily; a missing package raises
:class:`~latbench.errors.RuntimeNotInstalledError` naming the extra that installs it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from latbench._registry import Registry
from latbench.errors import ConfigError, ModelError, RuntimeNotInstalledError

__all__ = ["RUNTIMES", "Runtime", "Session", "get_runtime", "make_inputs"]

log = logging.getLogger(__name__)

RUNTIMES: Registry[type[Runtime]] = Registry("runtimes")


class Session(ABC):
    """A loaded model, ready to run one inference per ``run()`` call."""

    runtime: str = ""
    version: str = ""

    def __init__(self) -> None:
        self.input_shapes: dict[str, list[int]] = {}
        self.settings: dict[str, Any] = {}

    @abstractmethod
    def run(self) -> None:
        """One inference on the pre-generated inputs (the timed call)."""

    def profile_ops(self, runs: int = 20) -> list[dict[str, Any]]:
        """Per-operator profile over ``runs`` inferences; rows sorted by time, shares sum to 1."""
        raise NotImplementedError(f"{self.runtime} has no per-operator profiler in latbench")

    def close(self) -> None:  # noqa: B027 - optional hook, most sessions hold nothing to free
        """Release the runtime's resources."""


class Runtime(ABC):
    """A runtime adapter: loads model files (or modules) into :class:`Session` objects."""

    name: ClassVar[str] = ""
    extra: ClassVar[str] = ""  # the latbench extra that installs the runtime's package
    suffixes: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[tuple[str, ...]] = ()  # the option keys ``load`` understands

    @abstractmethod
    def load(
        self,
        model: Any,
        *,
        threads: int | None = 1,
        batch: int | None = None,
        options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Session:
        """Load ``model`` and generate its inputs; raises ModelError for a bad model."""

    @classmethod
    def package_version(cls) -> str:
        """The runtime package's version (raises RuntimeNotInstalledError when missing)."""
        raise NotImplementedError


def get_runtime(name: str) -> Runtime:
    """An instance of the runtime registered as ``name`` (UnknownNameError lists the known ones)."""
    return RUNTIMES.get(name)()


def _missing(package: str, extra: str, exc: ImportError) -> RuntimeNotInstalledError:
    hint = f"pip install 'latbench[{extra}]'" if extra else f"pip install {package}"
    return RuntimeNotInstalledError(
        f"the runtime package {package!r} is not installed ({exc}); install it with: {hint}"
    )


#: the model-file suffixes of each runtime (a file of another suffix is read as the format of
#: the runtime asked for; one of another runtime's suffix is refused as a likely mix-up)
MODEL_SUFFIXES = {"onnxruntime": (".onnx",), "litert": (".tflite",), "torch": (".pt", ".pt2")}


def missing_model_message(path: str | os.PathLike[str]) -> str:
    """Why ``path`` cannot be read as a model file: missing, a directory, or not a regular file."""
    p = Path(path)
    if p.is_dir():
        return f"model file {str(p)!r} is a directory; expected a model file"
    if p.exists():
        return (
            f"model file {str(p)!r} is not a regular file (a device, pipe or socket); "
            "expected a model file"
        )
    return f"model file {str(p)!r} does not exist"


def _check_file(model: Any, suffixes: tuple[str, ...], runtime: str) -> Path:
    if not isinstance(model, str | os.PathLike):
        raise ModelError(
            f"runtime {runtime!r} loads model files ({', '.join(suffixes)}); got {type(model)!r}"
        )
    path = Path(model)
    if not path.is_file():
        raise ModelError(missing_model_message(path))
    suffix = path.suffix.lower()
    owner = next(
        (rt for rt, sfx in MODEL_SUFFIXES.items() if suffix in sfx and rt != runtime), None
    )
    if suffix not in suffixes and owner is not None:
        article = "an" if owner[0] in "aeiou" else "a"
        raise ModelError(
            f"model file {str(path)!r} has suffix {path.suffix!r} ({article} {owner} model); "
            "runtime "
            f"{runtime!r} expects {' or '.join(suffixes)}"
        )
    return path


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int >= 0 (numpy's generators refuse negative seeds)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{what} {seed!r}; expected an integer >= 0")
    return seed


#: the most intra-op threads a runtime is asked for: onnxruntime starts every one of them when
#: the session is created (a million would hang the worker until its timeout, 2**40 is a
#: TypeError deep inside it), and no CPU latbench measures has this many cores
MAX_THREADS = 1024


def _optional_count(name: str, value: Any, default: str, high: int | None = None) -> int | None:
    """``value`` as an int >= 1 (and <= ``high``), or None (``default`` then applies)."""
    if value is not None and (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or int(value) < 1
        or (high is not None and int(value) > high)
    ):
        span = f">= 1 and <= {high}" if high is not None else ">= 1"
        raise ConfigError(f"{name} = {value!r}; expected an integer {span}, or None for {default}")
    return None if value is None else int(value)


def check_threads(threads: Any) -> int | None:
    """``threads`` as an int >= 1 and <= :data:`MAX_THREADS`, or None (the runtime's default)."""
    return _optional_count("threads", threads, "the runtime's default", MAX_THREADS)


def check_batch(batch: Any) -> int | None:
    """``batch`` as an int >= 1, or None (the model's own batch)."""
    return _optional_count("batch", batch, "the model's own batch")


def check_options(
    options: Mapping[str, Any] | None, runtime: str, known: tuple[str, ...]
) -> dict[str, Any]:
    """``options`` as a dict, refusing a key ``runtime`` does not know (a misspelt option would
    do nothing, yet be recorded as if it had)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"options = {options!r}; expected a mapping of runtime options")
    unknown = [k for k in options if k not in known]
    if unknown:
        raise ConfigError(
            f"runtime {runtime!r} has no option {unknown[0]!r}; expected "
            + (", ".join(known) if known else "no options")
        )
    return dict(options)


def check_batch_applies(batch: int | None, shapes: Mapping[str, list[int]]) -> None:
    """Refuse a batch other than 1 for a model none of whose inputs has a batch dimension."""
    if batch is None or batch == 1 or any(len(s) > 0 for s in shapes.values()):
        return
    what = (
        "has no inputs"
        if not shapes
        else "has only scalar inputs (" + ", ".join(repr(k) for k in shapes) + ")"
    )
    raise ModelError(
        f"batch {batch}: the model {what}, so there is no batch dimension to set; "
        "expected no batch (or batch 1)"
    )


def batch_of(shapes: Mapping[str, list[int]]) -> int:
    """The batch of a model's inputs: dim 0 of the first input that has one, else 1."""
    return next((int(s[0]) for s in shapes.values() if len(s) > 0), 1)


def _runtime_message(exc: BaseException, limit: int = 500) -> str:
    """The informative part of a runtime's exception text, on one line.

    onnxruntime puts the detail on later lines ("index: 0 Got: 2 Expected: 1"), so keep every
    line but the boilerplate advice and the status-code prefix.
    """
    lines = [ln.strip() for ln in str(exc).strip().splitlines()]
    keep = [ln for ln in lines if ln and not ln.lower().startswith("please fix")]
    text = "; ".join(keep) or type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    if len(text) <= limit:
        return text
    # Cut at the last sentence (else word) that fits, and say that it was cut: a message that
    # stops mid-word ("or the file was ") reads as a broken one.
    head = text[: limit - 4]
    end = max(head.rfind(". "), head.rfind("; "))
    if end < limit // 2:
        end = head.rfind(" ")
    return (head[: end + 1] if end > 0 else head).rstrip(" ;") + " ..."


def _np_dtype(name: str) -> Any:
    import numpy as np

    table = {
        "float": np.float32,
        "float32": np.float32,
        "float16": np.float16,
        "double": np.float64,
        "float64": np.float64,
        "int64": np.int64,
        "int32": np.int32,
        "int16": np.int16,
        "int8": np.int8,
        "uint64": np.uint64,
        "uint32": np.uint32,
        "uint16": np.uint16,
        "uint8": np.uint8,
        "bool": np.bool_,
    }
    if name not in table:
        raise ModelError(
            f"input element type {name!r} is not supported for generated inputs; expected one "
            f"of {', '.join(table)}"
        )
    return table[name]


#: the largest generated input (bytes): beyond it the batch or a shape is a mistake
MAX_INPUT_BYTES = 1 << 34


def make_inputs(specs: Mapping[str, tuple[list[int], str]], seed: int = 0) -> dict[str, Any]:
    """Seeded random inputs: ``{name: (shape, dtype)}`` -> ``{name: numpy array}``.

    Floats are uniform in [-1, 1), integers small non-negative values, booleans fair coins; the
    same ``seed`` always gives the same arrays.
    """
    import numpy as np

    rng = np.random.default_rng(check_seed(seed))
    out: dict[str, Any] = {}
    for name, (shape, dtype_name) in specs.items():
        dt = _np_dtype(dtype_name)
        nbytes = math.prod(shape) * np.dtype(dt).itemsize
        if nbytes > MAX_INPUT_BYTES:  # a batch of 10**12 is a MemoryError, not a latency
            raise ModelError(
                f"input {name!r} of shape {list(shape)} ({dtype_name}) needs {nbytes:,} bytes; "
                f"expected an input of at most {MAX_INPUT_BYTES:,} bytes (a smaller batch)"
            )
        if np.issubdtype(dt, np.floating):
            arr = rng.uniform(-1.0, 1.0, size=shape).astype(dt)
        elif dt is np.bool_:
            arr = rng.integers(0, 2, size=shape).astype(np.bool_)
        else:
            arr = rng.integers(0, 8, size=shape).astype(dt)
        out[name] = arr
    return out


def _integer_inputs_note(specs: Mapping[str, tuple[list[int], str]]) -> str:
    """Why a model may refuse inputs of the right shape: generated integers are in [0, 8), which
    an index input (token ids into a 3-row table, a Gather) can reject by *value*."""
    ints = [f"{k} ({dt})" for k, (_, dt) in specs.items() if re.fullmatch(r"u?int\d+", dt)]
    if not ints:
        return ""
    return (
        f"; the integer inputs {', '.join(ints)} are generated in [0, 8): expected a model "
        "that accepts such values there (an index into a table of at least 8 rows)"
    )


#: onnxruntime's log severity for fatal messages (0 verbose ... 3 error, 4 fatal)
_ORT_LOG_FATAL = 4


def _shape_with_batch(name: str, dims: list[Any], batch: int | None) -> list[int]:
    """Resolve a signature shape: dim 0 is the batch; other symbolic dims are an error."""
    shape: list[int] = []
    for i, d in enumerate(dims):
        if isinstance(d, int) and d == 0:  # static and empty: not a batch to fill in
            where = "a batch dimension (0)" if i == 0 else f"dimension {i}"
            raise ModelError(
                f"input {name!r} has {where} of size 0; expected a size >= 1 (an empty tensor "
                "measures no computation)"
            )
        if i == 0 and (batch is not None or not isinstance(d, int) or d < 1):
            shape.append(batch if batch is not None else 1)
        elif isinstance(d, int) and d >= 1:
            shape.append(d)
        else:
            raise ModelError(
                f"input {name!r} has a dynamic dimension {i} ({d!r}); latbench needs static "
                "shapes except for the batch dimension"
            )
    return shape


def _finish_profile(times: dict[tuple[str, str], float], runs: int) -> list[dict[str, Any]]:
    total = sum(times.values()) or 1.0
    ordered = sorted(times.items(), key=lambda kv: -kv[1])
    return [
        {"op": op, "name": name, "time_ms": t / runs, "share": t / total}
        for (op, name), t in ordered
    ]


# ---- onnxruntime -----------------------------------------------------------------------
_ORT_LEVELS = {"disable": 0, "basic": 1, "extended": 2, "all": 99}


class OnnxRuntimeSession(Session):
    runtime = "onnxruntime"

    def __init__(
        self, path: Path, threads: int | None, batch: int | None, opts: Mapping[str, Any], seed: int
    ) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise _missing("onnxruntime", "", exc) from None
        self._ort = ort
        self.version = ort.__version__
        self._path = path
        level = str(opts.get("opt_level", "all"))
        if level not in _ORT_LEVELS:
            raise ConfigError(
                f"onnxruntime opt_level {level!r}; expected one of {', '.join(_ORT_LEVELS)}"
            )
        self._opts = ort.SessionOptions()
        self._opts.intra_op_num_threads = int(threads or 0)
        self._opts.inter_op_num_threads = 1
        self._opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._opts.graph_optimization_level = ort.GraphOptimizationLevel(_ORT_LEVELS[level])
        # fatal only: an error also comes back as the exception latbench reports with its
        # input shapes; onnxruntime's own coloured copy of it on stderr would say it twice
        self._opts.log_severity_level = _ORT_LOG_FATAL
        self._sess = self._make_session(self._opts)
        specs: dict[str, tuple[list[int], str]] = {}
        for inp in self._sess.get_inputs():
            dtype = str(inp.type).removeprefix("tensor(").removesuffix(")")
            specs[inp.name] = (_shape_with_batch(inp.name, list(inp.shape), batch), dtype)
        self.input_shapes = {k: list(v[0]) for k, v in specs.items()}
        check_batch_applies(batch, self.input_shapes)
        self.feeds = make_inputs(specs, seed)
        self.settings = {
            "execution_provider": "CPUExecutionProvider",
            "intra_op_num_threads": self._opts.intra_op_num_threads,
            "inter_op_num_threads": self._opts.inter_op_num_threads,
            "execution_mode": "sequential",
            "opt_level": level,
            "providers": list(self._sess.get_providers()),
        }
        self._sess_run = self._sess.run
        try:
            self._sess_run(None, self.feeds)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelError(
                f"{path.name}: the model rejects the input shapes {self.input_shapes}: "
                f"{_runtime_message(exc)}{_integer_inputs_note(specs)}"
            ) from None

    def _make_session(self, opts: Any) -> Any:
        try:
            return self._ort.InferenceSession(
                str(self._path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelError(
                f"{str(self._path)!r} is not a valid ONNX model onnxruntime can load: "
                f"{_runtime_message(exc, 300)}"
            ) from None

    def run(self) -> None:
        self._sess_run(None, self.feeds)

    def profile_ops(self, runs: int = 20) -> list[dict[str, Any]]:
        """onnxruntime's own profiler (a Chrome trace), aggregated per node over ``runs``."""
        with tempfile.TemporaryDirectory(prefix="latbench-ortprof-") as tmp:
            opts = self._ort.SessionOptions()
            opts.intra_op_num_threads = self._opts.intra_op_num_threads
            opts.inter_op_num_threads = self._opts.inter_op_num_threads
            opts.execution_mode = self._opts.execution_mode
            opts.graph_optimization_level = self._opts.graph_optimization_level
            opts.log_severity_level = _ORT_LOG_FATAL
            opts.enable_profiling = True
            opts.profile_file_prefix = os.path.join(tmp, "ort")
            # one session (a profiling session cannot be restarted): its first runs are the
            # cold ones (allocation, first-touch), profiled too but left out of the table
            sess = self._make_session(opts)
            for _ in range(PROFILE_WARMUP_RUNS + runs):
                sess.run(None, self.feeds)
            trace_path = sess.end_profiling()
            events = json.loads(Path(trace_path).read_text(encoding="utf-8"))
        return parse_ort_profile(events, runs, skip_runs=PROFILE_WARMUP_RUNS)


#: runs of a profiling session left out of its per-operator table (the first run of a fresh
#: onnxruntime session is about 1.7x slower than the next ones)
PROFILE_WARMUP_RUNS = 3


def parse_ort_profile(
    events: list[dict[str, Any]], runs: int, skip_runs: int = 0
) -> list[dict[str, Any]]:
    """Aggregate onnxruntime profiler events (``cat == "Node"``, ``*_kernel_time``) per node.

    ``skip_runs``: leave out the node events of the first ``skip_runs`` runs (those before the
    start of the next ``model_run`` event), so ``time_ms`` is the mean over the ``runs`` after.
    """
    starts = sorted(
        float(ev.get("ts", 0))
        for ev in events
        if ev.get("cat") == "Session" and ev.get("name") == "model_run"
    )
    cutoff = starts[skip_runs] if 0 < skip_runs < len(starts) else -math.inf
    times: dict[tuple[str, str], float] = {}
    for ev in events:
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        if float(ev.get("ts", 0)) < cutoff:
            continue
        args = ev.get("args", {})
        key = (str(args.get("op_name", "?")), str(ev["name"]).removesuffix("_kernel_time"))
        times[key] = times.get(key, 0.0) + float(ev.get("dur", 0)) / 1e3  # us -> ms
    return _finish_profile(times, max(1, runs))


@RUNTIMES.register("onnxruntime")
class OnnxRuntime(Runtime):
    """onnxruntime, CPU execution provider; options: ``opt_level`` (disable|basic|extended|all)."""

    name = "onnxruntime"
    extra = ""
    suffixes = (".onnx",)
    options = ("opt_level",)

    @classmethod
    def package_version(cls) -> str:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise _missing("onnxruntime", cls.extra, exc) from None
        return str(ort.__version__)

    def load(
        self,
        model: Any,
        *,
        threads: int | None = 1,
        batch: int | None = None,
        options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Session:
        opts = check_options(options, self.name, self.options)
        threads, batch = check_threads(threads), check_batch(batch)
        path = _check_file(model, self.suffixes, self.name)
        return OnnxRuntimeSession(path, threads, batch, opts, seed)


# ---- LiteRT ------------------------------------------------------------------------------
class LiteRTSession(Session):
    runtime = "litert"

    def __init__(
        self, path: Path, threads: int | None, batch: int | None, opts: Mapping[str, Any], seed: int
    ) -> None:
        super().__init__()
        try:
            import ai_edge_litert
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError as exc:
            raise _missing("ai-edge-litert", "litert", exc) from None
        self.version = str(getattr(ai_edge_litert, "__version__", "") or _dist_version())
        xnnpack = opts.get("xnnpack", True)
        if not isinstance(xnnpack, bool):  # bool("false") is True
            raise ConfigError(f"litert option xnnpack = {xnnpack!r}; expected true or false")
        resolver = (
            OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        try:
            self._it = Interpreter(
                model_path=str(path),
                num_threads=threads if threads else None,
                experimental_op_resolver_type=resolver,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"{str(path)!r} is not a valid TFLite model LiteRT can load: "
                f"{_runtime_message(exc, 300)}"
            ) from None
        details = self._it.get_input_details()
        specs: dict[str, tuple[list[int], str]] = {}
        for d in details:
            dims = (
                [int(x) for x in d["shape_signature"]]
                if len(d["shape_signature"])
                else [int(x) for x in d["shape"]]
            )
            shape = _shape_with_batch(d["name"], dims, batch)
            try:
                if list(d["shape"]) != shape:
                    self._it.resize_tensor_input(d["index"], shape, strict=False)
            except (ValueError, RuntimeError) as exc:
                raise ModelError(
                    f"{path.name}: the model rejects input shape {shape}: {exc}"
                ) from None
            specs[d["name"]] = (shape, d["dtype"].__name__)
        try:
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"{path.name}: the model rejects the input shapes "
                f"{ {k: v[0] for k, v in specs.items()} }: {str(exc).strip()[:300]}"
            ) from None
        self.input_shapes = {k: list(v[0]) for k, v in specs.items()}
        check_batch_applies(batch, self.input_shapes)
        feeds = make_inputs(specs, seed)
        for d in details:
            self._it.set_tensor(d["index"], feeds[d["name"]])
        self.settings = {"num_threads": threads, "xnnpack": xnnpack, "op_resolver": resolver.name}
        self._invoke = self._it.invoke
        try:
            self._invoke()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path.name}: inference failed: {str(exc).strip()[:300]}") from None

    def run(self) -> None:
        self._invoke()

    def profile_ops(self, runs: int = 20) -> list[dict[str, Any]]:
        raise NotImplementedError(
            "the ai-edge-litert Python API exposes no operator profiler; on a device use "
            "LiteRT's benchmark_model --enable_op_profiling=true (the adb device does)"
        )


def _dist_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        return ""


@RUNTIMES.register("litert")
class LiteRT(Runtime):
    """LiteRT through ``ai-edge-litert``; options: ``xnnpack`` (bool, default True)."""

    name = "litert"
    extra = "litert"
    suffixes = (".tflite",)
    options = ("xnnpack",)

    @classmethod
    def package_version(cls) -> str:
        try:
            import ai_edge_litert  # noqa: F401
        except ImportError as exc:
            raise _missing("ai-edge-litert", cls.extra, exc) from None
        return _dist_version()

    def load(
        self,
        model: Any,
        *,
        threads: int | None = 1,
        batch: int | None = None,
        options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Session:
        opts = check_options(options, self.name, self.options)
        threads, batch = check_threads(threads), check_batch(batch)
        path = _check_file(model, self.suffixes, self.name)
        self.package_version()
        return LiteRTSession(path, threads, batch, opts, seed)


# ---- torch -------------------------------------------------------------------------------
#: the hint of every "cannot tell the input shapes" error: the CLI option and the Python option
INPUT_SHAPE_HINT = (
    "pass --input-shape 1x3x224x224 (repeatable, NAME=1x3x224x224 or NAME=1x5:int64 to name an "
    "input or give its dtype) on the command line, or options={'input_shapes': {'input': "
    "[1, 3, 224, 224]}} (and 'input_dtypes': {'input': 'int64'}) in Python"
)


def _graph_json_inputs(module: Any) -> dict[str, list[int]] | None:
    """Input shapes of a latbench-emitted module (it carries its graph as JSON)."""
    text = getattr(module, "graph_json", None)
    if not isinstance(text, str):
        return None
    doc = json.loads(text)
    return {
        str(n["name"]): [int(x) for x in n["shape"]]
        for n in doc.get("nodes", [])
        if n.get("op") == "input"
    }


def _torch_dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _exported_inputs(program: Any) -> dict[str, tuple[list[Any], str]]:
    """(shape, dtype) of each user input of a ``torch.export`` program, from its placeholders'
    example values; a symbolic dimension (a dynamic batch) is kept as its name."""
    user = set(program.graph_signature.user_inputs)
    specs: dict[str, tuple[list[Any], str]] = {}
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user and "val" in node.meta:
            val = node.meta["val"]
            dims: list[Any] = []
            for x in getattr(val, "shape", ()):
                try:
                    dims.append(int(x))
                except (TypeError, ValueError, RuntimeError):  # a SymInt: a dynamic dimension
                    dims.append(str(x))
            specs[node.name] = (dims, _torch_dtype_name(getattr(val, "dtype", "float32")))
    return specs


@contextlib.contextmanager
def _quiet_torch_logs() -> Any:
    """Silence torch's loggers: ``torch.export.load`` logs a whole traceback at WARNING before
    it raises, and the raised error (turned into a ModelError) says the same in one line."""
    names = ["torch"] + [n for n in logging.root.manager.loggerDict if n.startswith("torch.")]
    loggers = [logging.getLogger(n) for n in names]
    saved = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, was in zip(loggers, saved, strict=True):
            lg.disabled = was


def _load_torch_file(torch: Any, path: Path) -> tuple[Any, str, Any]:
    """(module, mode, exported program or None) of a ``.pt2`` / TorchScript ``.pt`` file; a file
    of another suffix is tried as TorchScript, then as an exported program."""
    suffix = path.suffix.lower()
    kinds = ["exported"] if suffix == ".pt2" else ["torchscript"]
    if suffix not in (".pt", ".pt2"):
        kinds = ["torchscript", "exported"]
    first: Exception | None = None
    for kind in kinds:
        try:
            with _quiet_torch_logs():
                if kind == "exported":
                    program = torch.export.load(str(path))
                    return program.module(), "exported", program
                return torch.jit.load(str(path), map_location="cpu"), "torchscript", None
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
            first = first or exc
    assert first is not None
    raise ModelError(
        f"{str(path)!r} is not a torch model torch can load: {_runtime_message(first, 300)}"
    )


class TorchSession(Session):
    runtime = "torch"

    def __init__(
        self,
        module: Any,
        specs: dict[str, tuple[list[int], str]],
        threads: int | None,
        seed: int,
        source: str,
    ) -> None:
        super().__init__()
        import torch

        self._torch = torch
        self.version = str(torch.__version__)
        if threads:
            torch.set_num_threads(int(threads))
        if hasattr(module, "eval"):
            with contextlib.suppress(NotImplementedError):  # exported programs refuse eval()
                module.eval()
        self._module = module
        arrays = make_inputs(specs, seed)
        self._inputs = tuple(torch.from_numpy(a) for a in arrays.values())
        self.input_shapes = {k: list(v[0]) for k, v in specs.items()}
        self.settings = {
            "mode": source,
            "num_threads": torch.get_num_threads(),
            "num_interop_threads": torch.get_num_interop_threads(),
            "grad": False,
        }
        self._no_grad = torch.inference_mode()
        try:
            self.run()
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad input
            raise ModelError(
                f"the torch model rejects the inputs {self.input_shapes} "
                f"({', '.join(v[1] for v in specs.values())}): {_runtime_message(exc, 300)}"
            ) from None

    def run(self) -> None:
        with self._no_grad:
            self._module(*self._inputs)

    def profile_ops(self, runs: int = 20) -> list[dict[str, Any]]:
        """torch.profiler, CPU activity, aggregated per aten operator (self CPU time)."""
        from torch.profiler import ProfilerActivity, profile

        self.run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                self.run()
        times: dict[tuple[str, str], float] = {}
        for ev in prof.key_averages():
            if ev.self_cpu_time_total <= 0:
                continue
            times[(ev.key, ev.key)] = float(ev.self_cpu_time_total) / 1e3  # us -> ms
        return _finish_profile(times, max(1, runs))


def _option_shapes(opts: Mapping[str, Any]) -> dict[str, list[int]] | None:
    shapes = opts.get("input_shapes")
    if shapes is None:
        return None
    if not isinstance(shapes, Mapping) or not shapes:
        raise ConfigError(
            f"option input_shapes = {shapes!r}; expected a mapping {{name: [1, 3, 224, 224]}}"
        )
    out: dict[str, list[int]] = {}
    for name, shape in shapes.items():
        ok = isinstance(shape, list | tuple) and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
        )
        if not ok:
            raise ConfigError(
                f"input_shapes[{name!r}] = {shape!r}; expected a list of integers >= 1"
            )
        out[str(name)] = [int(d) for d in shape]
    return out


@RUNTIMES.register("torch")
class TorchRuntime(Runtime):
    """torch eager on CPU: an ``nn.Module``, a zero-arg factory of one, or a ``.pt``/``.pt2`` file.

    Options: ``input_shapes`` ({name: shape}) when the module does not carry its input shapes
    (latbench-emitted modules and ``.pt2`` programs do; TorchScript files do not), and
    ``input_dtypes`` ({name: dtype}, default float32, or the ``.pt2`` program's own dtypes).
    """

    name = "torch"
    extra = ""
    suffixes = (".pt", ".pt2")
    # ``dtype`` is read by the cuda device, which loads its modules through this runtime
    options = ("input_shapes", "input_dtypes")

    @classmethod
    def package_version(cls) -> str:
        try:
            import torch
        except ImportError as exc:
            raise _missing("torch", cls.extra, exc) from None
        return str(torch.__version__)

    def load(
        self,
        model: Any,
        *,
        threads: int | None = 1,
        batch: int | None = None,
        options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Session:
        opts = check_options(options, self.name, self.options)
        threads, batch = check_threads(threads), check_batch(batch)
        self.package_version()
        import torch

        source = "eager"
        module: Any
        given = _option_shapes(opts)
        raw_dtypes = opts.get("input_dtypes") or {}
        if not isinstance(raw_dtypes, Mapping):
            raise ConfigError(
                f"option input_dtypes = {raw_dtypes!r}; expected a mapping {{name: 'int64'}}"
            )
        dtypes = {str(k): str(v) for k, v in raw_dtypes.items()}
        recorded: dict[str, tuple[list[Any], str]] = {}
        if isinstance(model, str | os.PathLike):
            path = _check_file(model, self.suffixes, self.name)
            module, source, program = _load_torch_file(torch, path)
            if program is not None:
                recorded = _exported_inputs(program)
        elif isinstance(model, torch.nn.Module):
            module = model
        elif callable(model):
            factory: Callable[[], Any] = model
            module = factory()
            if not isinstance(module, torch.nn.Module):
                raise ModelError(f"the model factory returned {type(module)!r}, not nn.Module")
        else:
            raise ModelError(
                f"torch runtime expects an nn.Module, a zero-arg factory or a .pt/.pt2 file; "
                f"got {type(model)!r}"
            )
        if given is not None:
            if recorded and len(given) != len(recorded):
                raise ConfigError(
                    f"input_shapes gives {len(given)} input(s); the model has {len(recorded)} "
                    f"({', '.join(recorded)})"
                )
            # the program's own dtypes, position by position, unless input_dtypes says otherwise
            own = [v[1] for v in recorded.values()] or ["float32"] * len(given)
            raw = {k: (list(v), dtypes.get(k, own[i])) for i, (k, v) in enumerate(given.items())}
        elif recorded:
            raw = {k: (dims, dtypes.get(k, dt)) for k, (dims, dt) in recorded.items()}
        else:
            emitted = _graph_json_inputs(module)
            if not emitted:
                raise ModelError(f"cannot tell the torch model's input shapes; {INPUT_SHAPE_HINT}")
            raw = {k: (list(v), dtypes.get(k, "float32")) for k, v in emitted.items()}
        stray = [k for k in dtypes if k not in raw]
        if stray:
            raise ConfigError(
                f"input_dtypes names the input {stray[0]!r}; the model's inputs are "
                f"{', '.join(map(repr, raw))}"
            )
        specs = {
            name: (_shape_with_batch(name, dims, batch), dt) for name, (dims, dt) in raw.items()
        }
        check_batch_applies(batch, {k: v[0] for k, v in specs.items()})
        for _, dt in specs.values():
            _np_dtype(dt)  # an unsupported dtype: a ModelError naming it
        return TorchSession(module, specs, threads, seed, source)
