"""The board serial recorded with every measurement (``profilers.env.board_serial``)."""

from __future__ import annotations

from latbench.profilers.env import board_serial, collect_env, hardware_identity

# the tail of /proc/cpuinfo in the layout a Raspberry Pi 4 (64-bit kernel) prints it
PI4_CPUINFO = """processor\t: 3
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08

Hardware\t: BCM2835
Revision\t: c03111
Serial\t\t: 10000000a1b2c3d4
Model\t\t: Raspberry Pi 4 Model B Rev 1.1
"""


def test_the_device_tree_serial_wins_and_its_nul_is_stripped() -> None:
    assert board_serial(PI4_CPUINFO, "10000000a1b2c3d4\x00") == "10000000a1b2c3d4"
    assert board_serial("", "00000000deadbeef\x00") == "00000000deadbeef"


def test_cpuinfo_serial_when_the_device_tree_has_none() -> None:
    assert board_serial(PI4_CPUINFO, "") == "10000000a1b2c3d4"


def test_no_serial_or_zeros_is_none() -> None:
    assert board_serial("processor\t: 0\nmodel name\t: x86\n", "") is None
    assert board_serial("Serial\t\t: 0000000000000000\n", "") is None


def test_the_serial_is_recorded_but_not_part_of_the_hardware_identity() -> None:
    env = collect_env()
    assert env.get("board_serial") == board_serial()
    assert "board_serial" not in hardware_identity()
