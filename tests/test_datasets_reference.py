"""The bundled reference tables: shape, naming, batch parsing, the quirks the README names."""

from __future__ import annotations

import numpy as np
import pytest

import latbench.datasets as lds
from latbench.datasets.reference import batch_of
from latbench.errors import UnknownNameError
from latbench.spaces import NB201Space, get_space


def test_reference_tables_are_listed_with_their_sizes() -> None:
    df = lds.list_reference().set_index("name")
    assert df.loc["nb201", "archs"] == 15625 and df.loc["nb201", "devices"] == 36
    assert df.loc["fbnet", "archs"] == 5000 and df.loc["fbnet", "devices"] == 21
    assert df.loc["nb201", "rows"] == 371139 and df.loc["fbnet", "rows"] == 105000


def test_licences_and_attribution_ship_with_the_data() -> None:
    ref = lds.reference_dir()
    names = {p.name for p in (ref / "licenses").iterdir()}
    assert names == {"HELP.LICENSE", "OneProxy.LICENSE", "nn-Meter.LICENSE", "brp-nas.LICENSE"}
    text = (ref / "ATTRIBUTION.md").read_text()
    for needle in ("HayeonLee/HELP", "Ren-Research/OneProxy", "microsoft/nn-Meter", "brp-nas"):
        assert needle in text


@pytest.mark.parametrize(("name", "n"), [("nb201", 371139), ("fbnet", 105000)])
def test_load_reference_is_long_format_without_empty_cells(name: str, n: int) -> None:
    df = lds.load_reference(name)
    assert list(df.columns) == ["space", "arch", "device", "latency_ms", f"{name}_index", "batch"]
    assert len(df) == n
    assert (df["space"] == name).all()
    assert df["latency_ms"].notna().all() and (df["latency_ms"] > 0).all()
    assert set(df["device"]) == set(lds.reference_devices(name))
    assert all("/" in d for d in df["device"].unique())  # source/device naming


def test_reference_devices_and_batch_suffixes() -> None:
    devices = lds.reference_devices("nb201")
    assert len(devices) == 36 and devices[0] == "help/1080ti_1"
    assert batch_of("help/1080ti_256") == 256 and batch_of("help/titanx_32") == 32
    assert batch_of("help/essential_ph_1") == 1  # a phone, batch 1
    assert batch_of("oneproxy/eagle_jetson_16") == 1  # fp16, not batch 16
    assert batch_of("latbench/desktop_cpu_i7_7820x_fp32") == 1
    fb = lds.load_reference("fbnet")
    assert set(fb.loc[fb["device"] == "help/1080ti_64", "batch"]) == {64}


def test_nb201_reference_archs_are_canonical_and_match_their_index() -> None:
    space = NB201Space()
    wide = lds.load_wide("nb201")
    pairs = zip(wide["nb201_index"], wide["arch"], strict=True)
    assert all(space.from_index(int(i)) == a for i, a in pairs)


def test_fbnet_reference_archs_are_canonical() -> None:
    space = get_space("fbnet")
    wide = lds.load_wide("fbnet")
    assert all(space.canonical(a) == a for a in wide["arch"])
    assert wide["fbnet_index"].tolist() == list(range(5000))


def test_quirk_partial_coverage_is_not_measured_not_zero() -> None:
    df = lds.load_reference("nb201")
    counts = df.groupby("device").size()
    assert counts["help/pixel3"] == 15625
    assert counts["latbench/desktop_cpu_i7_7820x_fp32"] == 15284
    assert counts["oneproxy/rice_edgetpu"] == 1740


def test_quirk_sub_01_ms_cells_on_phone_columns() -> None:
    df = lds.load_reference("nb201")
    tiny = df[df["latency_ms"] < 0.1]
    assert len(tiny) > 0
    assert set(tiny["device"]) <= {
        d
        for d in df["device"].unique()
        if "pixel" in d
        or "855" in d
        or "samsung" in d
        or "essential" in d
        or "cortex" in d
        or "adreno" in d
    }


def test_quirk_whole_ms_columns_have_ties() -> None:
    wide = lds.load_wide("nb201")
    col = wide["help/samsung_s7"].dropna()
    assert np.allclose(col, col.round())
    assert col.nunique() < len(col) / 10


def test_quirk_eagle_gtx_nearly_equals_eagle_i7() -> None:
    wide = lds.load_wide("nb201")
    both = wide[["oneproxy/eagle_gtx", "oneproxy/eagle_i7"]].dropna()
    ratio = (both["oneproxy/eagle_gtx"] / both["oneproxy/eagle_i7"]).mean()
    assert ratio == pytest.approx(1.003, abs=0.002)


def test_unknown_reference_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="expected one of: fbnet, nb201"):
        lds.load_reference("imagenet")
