"""The pure parsers, on saved real outputs of benchmark_model, getprop, dumpsys and vcgencmd."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.devices import parsers
from latbench.errors import ParseError

FIX = Path(__file__).parent / "fixtures" / "devices"


def _read(name: str) -> str:
    return (FIX / name).read_text()


@pytest.mark.parametrize(
    ("name", "count", "avg_us", "warmup_count", "inference_avg_us"),
    [
        ("benchmark_model_tf22_plain.txt", 50, 249684.0, 2, 249684.0),
        ("benchmark_model_info_xnnpack.txt", 1000, 63743.2, 9, 63743.2),
        ("benchmark_model_scientific_opprofile.txt", 50, 2.95034e06, 1, 2.95034e06),
        ("benchmark_model_gpu_fallback_logcat.txt", 25, 145528.0, 3, 145528.0),
        ("benchmark_model_gpu_not_executed.txt", 842, 1181.2, 412, 1181.2),
    ],
)
def test_benchmark_model_formats(
    name: str, count: int, avg_us: float, warmup_count: int, inference_avg_us: float
) -> None:
    out = parsers.parse_benchmark_model(_read(name))
    assert out["timed"]["count"] == count
    assert out["timed"]["avg_us"] == pytest.approx(avg_us)
    assert out["warmup"]["count"] == warmup_count
    assert out["inference_avg_us"] == pytest.approx(inference_avg_us)
    assert out["init_us"] > 0 and out["first_inference_us"] > 0


def test_benchmark_model_details() -> None:
    plain = parsers.parse_benchmark_model(_read("benchmark_model_tf22_plain.txt"))
    assert plain["timed"] == {
        "count": 50,
        "first_us": 249042.0,
        "curr_us": 250889.0,
        "min_us": 247067.0,
        "max_us": 254474.0,
        "avg_us": 249684.0,
        "std_us": 1442.0,
    }
    assert plain["memory_mb"] == {"peak_init": 4.92969, "peak_overall": 138.809}
    assert plain["params"]["Num threads"] == "4" and not plain["fallback"]
    info = parsers.parse_benchmark_model(_read("benchmark_model_info_xnnpack.txt"))
    assert info["timed"]["median_us"] == 51891.0 and info["timed"]["p95_us"] == 68628.0
    assert info["delegates"] == ["XNNPACK", "TfLiteXNNPackDelegate"]
    assert (info["delegated_nodes"], info["total_nodes"], info["partitions"]) == (64, 66, 3)
    assert info["memory_mb"] == {"delta_init": 55.4961, "delta_overall": 55.4961}
    sci = parsers.parse_benchmark_model(_read("benchmark_model_scientific_opprofile.txt"))
    assert sci["warmup_avg_us"] == pytest.approx(3.51239e06)
    assert sci["warmup"] == {"count": 1, "curr_us": 3512391.0}  # no avg in this warm-up line


def test_delegate_fallback_is_reported() -> None:
    partial = parsers.parse_benchmark_model(_read("benchmark_model_gpu_fallback_logcat.txt"))
    assert partial["fallback"] and partial["fallback_ops"] == 3
    assert "GPU" in partial["delegates"] and partial["delegated_nodes"] == 63
    assert partial["memory_mb"]["overall_peak"] == pytest.approx(71.1523)
    none = parsers.parse_benchmark_model(_read("benchmark_model_gpu_not_executed.txt"))
    assert none["fallback"]
    assert "will not be executed by the delegate" in none["fallback_lines"][0]


def test_failed_or_empty_output_raises_instead_of_zero() -> None:
    with pytest.raises(ParseError, match="Could not open"):
        parsers.parse_benchmark_model(_read("benchmark_model_failed.txt"))
    with pytest.raises(ParseError, match="no output"):
        parsers.parse_benchmark_model("")
    with pytest.raises(ParseError, match="no benchmark_model timing"):
        parsers.parse_benchmark_model("INFO: STARTING!\nINFO: Num threads: [1]\n")


def test_log_prefixes_are_stripped() -> None:
    for raw in (
        "INFO: count=3 first=1 curr=2 min=1 max=3 avg=2 std=1",
        "I tflite  : count=3 first=1 curr=2 min=1 max=3 avg=2 std=1",
        "I0101 12:00:00.000000 1234 benchmark_model.cc:189] count=3 first=1 curr=2 min=1 max=3 "
        "avg=2 std=1",
    ):
        assert parsers.strip_log_prefix(raw).startswith("count=3 ")
        assert parsers.parse_benchmark_model(raw)["timed"]["avg_us"] == 2.0


def test_op_profile_uses_the_run_table() -> None:
    rows = parsers.parse_op_profile(_read("benchmark_model_scientific_opprofile.txt"))
    assert [r["op"] for r in rows][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert rows[0]["time_ms"] == pytest.approx(2643.158) and rows[0]["count"] == 15
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    with pytest.raises(ParseError):
        parsers.parse_op_profile(_read("benchmark_model_tf22_plain.txt"))


def test_android_and_pi_readers() -> None:
    props = parsers.parse_getprop(_read("getprop_pixel6.txt"))
    assert props["ro.product.model"] == "Pixel 6" and props["ro.build.version.sdk"] == "34"
    bat = parsers.parse_dumpsys_battery(_read("dumpsys_battery.txt"))
    assert bat == {
        "level_pct": 83,
        "temperature_c": 30.1,
        "voltage_mv": 4189,
        "status": "charging",
        "plugged": ["usb"],
    }
    thr = parsers.parse_vcgencmd_throttled(_read("vcgencmd_throttled.txt"))
    assert thr["raw"] == 0x50005 and thr["under_voltage"] and thr["throttled"]
    assert thr["under_voltage_occurred"] and not thr["arm_freq_capped"]
    cpus = parsers.parse_cpufreq_table("cpu0 schedutil 1800000 300000 1800000\ncpu7 - - - -\n")
    assert cpus["cpu0"]["governor"] == "schedutil" and cpus["cpu7"]["cur_khz"] is None
    temps = parsers.parse_thermal_table("thermal_zone0 cpu-thermal 48312\nthermal_zone1 bat 31\n")
    assert temps == {"thermal_zone0:cpu-thermal": 48.312, "thermal_zone1:bat": 31.0}
    for fn in (parsers.parse_getprop, parsers.parse_dumpsys_battery):
        with pytest.raises(ParseError):
            fn("garbage")
    with pytest.raises(ParseError, match="throttled=0x"):
        parsers.parse_vcgencmd_throttled("VCHI initialization failed")
