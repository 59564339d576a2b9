"""The parsers on garbage, cut-short and nonsensical device output: a parse error, never a number.

Each case is a real output of the saved fixtures (``tests/fixtures/devices/``) damaged the way a
device damages it: a run killed after its warm-up, a failure after the warm-up line, an overflow,
a negative or zero time, a ``dumpsys`` field that is not a number, a ``vcgencmd`` reply that is
not hexadecimal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.devices import parsers
from latbench.errors import ParseError

FIX = Path(__file__).parent / "fixtures" / "devices"


def _read(name: str) -> str:
    return (FIX / name).read_text()


def _cut_before_timed(name: str) -> str:
    """The output up to (not including) the timed run's ``count=`` line: a run killed after
    its warm-up (the second 'Running benchmark' line is printed, its result never is)."""
    lines = _read(name).splitlines(keepends=True)
    counts = [i for i, ln in enumerate(lines) if parsers.strip_log_prefix(ln).startswith("count=")]
    return "".join(lines[: counts[1]])


@pytest.mark.parametrize(
    "name",
    [
        "benchmark_model_tf22_plain.txt",
        "benchmark_model_info_xnnpack.txt",
        "benchmark_model_gpu_fallback_logcat.txt",
        "benchmark_model_scientific_opprofile.txt",
    ],
)
def test_a_run_cut_after_its_warm_up_is_not_read_as_the_timed_run(name: str) -> None:
    text = _cut_before_timed(name)
    assert "count=" in text  # the warm-up's numbers are there ...
    with pytest.raises(ParseError, match=r"2 runs started, 1 reported.*cut short"):
        parsers.parse_benchmark_model(text)  # ... and must not pass for the result


def test_a_failure_after_the_warm_up_is_a_parse_error() -> None:
    head = _cut_before_timed("benchmark_model_tf22_plain.txt")
    text = head.split("Running benchmark for at least 50")[0]  # the warm-up's run, complete
    text += "ERROR: Failed to invoke the interpreter with error: Node number 3 failed.\n"
    text += "Benchmarking failed.\n"
    with pytest.raises(ParseError, match="benchmark_model failed: Failed to invoke"):
        parsers.parse_benchmark_model(text)
    assert parsers.benchmark_model_errors(text) == [
        "Failed to invoke the interpreter with error: Node number 3 failed.",
        "Benchmarking failed.",
    ]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("count=50 first=1 curr=1 min=1 max=1 avg=-3 std=0", "avg=-3.0"),
        ("count=50 first=0 curr=0 min=0 max=0 avg=0 std=0", "timed average is 0.0"),
        ("count=50 first=1 curr=1 min=1 max=1 avg=1e400 std=0", "avg=inf"),
        ("count=50 first=1 curr=1 min=-1 max=1 avg=2 std=0", "min=-1.0"),
        (
            "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, "
            "Inference (avg): 0",
            "timed average is 0.0",
        ),
    ],
)
def test_nonsensical_times_are_parse_errors(line: str, needle: str) -> None:
    with pytest.raises(ParseError) as info:
        parsers.parse_benchmark_model(f"INFO: {line}\n")
    assert needle in str(info.value)


def test_garbage_bytes_are_a_parse_error() -> None:
    for text in ("\x00\x01\xff count= avg=", "Segmentation fault\n", "count=5\n"):
        with pytest.raises(ParseError, match="no benchmark_model timing"):
            parsers.parse_benchmark_model(text)


def test_dumpsys_battery_fields_that_are_not_numbers_are_parse_errors() -> None:
    good = _read("dumpsys_battery.txt")
    for field, bad in (("level", "unknown"), ("temperature", "hot"), ("voltage", "4.1V")):
        lines = [
            f"  {field}: {bad}" if ln.strip().startswith(f"{field}:") else ln
            for ln in good.splitlines()
        ]
        with pytest.raises(ParseError, match=rf"{field}: '{bad}'; expected an integer"):
            parsers.parse_dumpsys_battery("\n".join(lines))


def test_vcgencmd_reply_that_is_not_a_number_is_a_parse_error() -> None:
    for text in ("throttled=0xZZ", "throttled=0x", "throttled=12abc", "throttled=1.5"):
        with pytest.raises(ParseError, match="throttled=0x"):
            parsers.parse_vcgencmd_throttled(text)
    assert parsers.parse_vcgencmd_throttled("throttled=0x0\n")["raw"] == 0


def test_op_profile_rows_with_impossible_times_are_parse_errors() -> None:
    head = "============================== Summary by node type ==============================\n"
    with pytest.raises(ParseError, match="expected a count >= 0 and a finite time >= 0"):
        parsers.parse_op_profile(head + "CONV_2D\t  3\t  -1.0\t  3%\t  4%\n")
    with pytest.raises(ParseError, match="expected a count >= 0 and a finite time >= 0"):
        parsers.parse_op_profile(head + "CONV_2D\t  3\t  inf\t  3%\t  4%\n")


def test_thermal_readings_that_are_not_finite_are_left_out() -> None:
    text = "thermal_zone0 cpu nan\nthermal_zone1 gpu inf\nthermal_zone2 bat 31000\n"
    assert parsers.parse_thermal_table(text) == {"thermal_zone2:bat": 31.0}
