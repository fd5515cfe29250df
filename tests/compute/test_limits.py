"""Pure tests of limit formatting, parsing, planning (the driver) and validation (agent.validation) (no I/O)."""
from __future__ import annotations

import pytest

from agent.drivers.cgroup.limits import (DEFAULTS, PAGE_SIZE, MissingFile, Write, files_for, observed_limits,
                                         parse_cpu_max, parse_io_max, parse_io_weight, plan, required_controllers)
from agent.drivers.cgroup.stats import parse_io_stat, parse_pressure
from agent.model.compute import (MAX, CpuLimits, CpusetLimits, HostFacts, HugetlbLimit, IoDeviceLimits, IoLimits,
                                 Limits, MemoryLimits, PidsLimits, format_cpulist, parse_cpulist)
from agent.validation import limit_violations

ALL = {"cpu", "memory", "pids", "io", "cpuset", "hugetlb"}
SIZES = ("2MB", "1GB")


def defaults(controllers=ALL, **override):
    obs = {f: (DEFAULTS.get(f) if not f.startswith("hugetlb.") else "max") for f in files_for(controllers, SIZES)}
    obs.update(override)
    return obs


def host(**kw):
    facts = dict(online_cpus=frozenset({0, 1, 2, 3}), online_mems=frozenset({0}),
                 hugepage_sizes=SIZES,
                 block_device=lambda d: {"8:0": "disk", "8:1": "partition"}.get(d, "missing"))
    facts.update(kw)
    return HostFacts(**facts)


# ------------------------------------------------------------------ formatting

def test_every_limit_kind_is_formatted_as_the_kernel_expects():
    limits = Limits(
        cpu=CpuLimits(quota_us=50000, period_us=100000, weight=200),
        memory=MemoryLimits(max=512 << 20, high=384 << 20, low=64 << 20, swap_max=0),
        pids=PidsLimits(max=128),
        io=IoLimits(weight=300, devices=(IoDeviceLimits("8:0", rbps=10 << 20, wiops=1000, weight=50),)),
        cpuset=CpusetLimits(cpus="0-1,3", mems="0"),
        hugetlb=(HugetlbLimit("2MB", 8 << 20),))
    writes = plan(limits, defaults(), full=True)
    assert set(writes) == {
        Write("cpu.max", "50000 100000"), Write("cpu.weight", "200"),
        Write("memory.max", str(512 << 20)), Write("memory.high", str(384 << 20)),
        Write("memory.low", str(64 << 20)), Write("memory.swap.max", "0"),
        Write("pids.max", "128"),
        Write("io.max", "8:0 rbps=10485760 wbps=max riops=max wiops=1000"),
        Write("io.weight", "default 300"), Write("io.weight", "8:0 50"),
        Write("cpuset.cpus", "0-1,3"), Write("cpuset.mems", "0"),
        Write("hugetlb.2MB.max", str(8 << 20)),
    }
    assert required_controllers(limits) == ALL


def test_same_limits_against_what_the_kernel_reports_need_no_write():
    limits = Limits(cpu=CpuLimits(quota_us=50000, weight=200), memory=MemoryLimits(max=1000000),
                    cpuset=CpusetLimits(cpus="0,1,3"),
                    io=IoLimits(devices=(IoDeviceLimits("8:0", rbps=1000),)))
    # as the kernel would print them back: memory rounded down to pages, cpus compressed
    observed = defaults(**{"cpu.max": "50000 100000", "cpu.weight": "200",
                           "memory.max": str(1000000 // PAGE_SIZE * PAGE_SIZE),
                           "cpuset.cpus": "0-1,3\n",
                           "io.max": "8:0 rbps=1000 wbps=max riops=max wiops=max\n"})
    assert plan(limits, observed, full=True) == []


def test_ensure_resets_unrequested_limits_to_kernel_defaults_update_leaves_them():
    observed = defaults(**{"memory.max": "1048576", "cpu.max": "20000 50000", "pids.max": "10",
                           "io.max": "8:0 rbps=1 wbps=max riops=max wiops=max\n",
                           "io.weight": "default 100\n8:0 77\n", "cpuset.cpus": "1",
                           "hugetlb.2MB.max": "2097152"})
    full = set(plan(Limits(), observed, full=True))
    assert full == {Write("memory.max", "max"), Write("cpu.max", "max 100000"), Write("pids.max", "max"),
                    Write("io.max", "8:0 rbps=max wbps=max riops=max wiops=max"),
                    Write("io.weight", "8:0 default"), Write("cpuset.cpus", "\n"),
                    Write("hugetlb.2MB.max", "max")}
    assert plan(Limits(), observed, full=False) == []
    # update of one field keeps the others (cpu.max keeps its period)
    assert plan(Limits(cpu=CpuLimits(quota_us=30000)), observed, full=False) == [Write("cpu.max", "30000 50000")]


def test_update_of_one_io_key_keeps_the_devices_other_keys():
    observed = defaults(**{"io.max": "8:0 rbps=5 wbps=6 riops=max wiops=max\n"})
    assert plan(Limits(io=IoLimits(devices=(IoDeviceLimits("8:0", wiops=9),))), observed, full=False) == [
        Write("io.max", "8:0 rbps=5 wbps=6 riops=max wiops=9")]


def test_max_is_written_as_max():
    limits = Limits(cpu=CpuLimits(quota_us=MAX), memory=MemoryLimits(max=MAX, low=MAX), pids=PidsLimits(MAX))
    obs = defaults(**{"cpu.max": "1000 100000", "memory.max": "4096", "pids.max": "5"})
    assert set(plan(limits, obs, full=False)) == {Write("cpu.max", "max 100000"), Write("memory.max", "max"),
                                                  Write("memory.low", "max"), Write("pids.max", "max")}


def test_requested_limit_whose_file_is_missing_is_refused_not_dropped():
    obs = defaults({"memory"}, **{"memory.swap.max": None})
    with pytest.raises(MissingFile) as e:
        plan(Limits(memory=MemoryLimits(swap_max=0)), obs, full=True)
    assert e.value.file == "memory.swap.max"
    # not requested: the missing file is simply not managed
    assert plan(Limits(memory=MemoryLimits(max=8192)), obs, full=True) == [Write("memory.max", "8192")]


def test_limits_read_back_from_kernel_text():
    files = defaults(**{"cpu.max": "max 100000", "cpu.weight": "100", "memory.max": "536870912",
                        "io.max": "8:16 rbps=2097152 wbps=max riops=max wiops=120\n",
                        "io.weight": "default 100\n8:16 300\n", "cpuset.cpus": "0-1\n",
                        "hugetlb.2MB.max": "4194304"})
    got = observed_limits(files)
    assert got.cpu == CpuLimits(MAX, 100000, 100)
    assert got.memory == MemoryLimits(536870912, MAX, 0, MAX)
    assert got.io == IoLimits(100, (IoDeviceLimits("8:16", 2097152, MAX, MAX, 120, weight=300),))
    assert got.cpuset == CpusetLimits("0-1\n", "")
    assert HugetlbLimit("2MB", 4194304) in got.hugetlb
    assert observed_limits({}) == Limits()


def test_parsers():
    assert parse_cpulist("0-3,5") == {0, 1, 2, 3, 5}
    assert parse_cpulist("") == frozenset()
    assert format_cpulist({0, 1, 2, 3, 5, 7, 8}) == "0-3,5,7-8"
    for bad in ("3-1", "a", "1,,2", "-1", "0-70000"):
        with pytest.raises(ValueError):
            parse_cpulist(bad)
    assert parse_cpu_max("max 100000\n") == (MAX, 100000)
    assert parse_io_max("8:0 rbps=1 wbps=max\n") == {"8:0": {"rbps": 1, "wbps": MAX, "riops": MAX, "wiops": MAX}}
    assert parse_io_weight("default 100\n8:0 5\n") == (100, {"8:0": 5})
    p = parse_pressure("some avg10=1.50 avg60=0.00 avg300=0.00 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n")
    assert p.some.avg10 == 1.5 and p.some.total_us == 42 and p.full.total_us == 7
    assert parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=3\n").full is None
    assert parse_io_stat("254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n")["254:0"]["wbytes"] == 20


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("limits, field", [
    (Limits(cpu=CpuLimits(quota_us=999)), "limits.cpu.quota_us"),
    (Limits(cpu=CpuLimits(quota_us=1 << 44)), "limits.cpu.quota_us"),
    (Limits(cpu=CpuLimits(period_us=999)), "limits.cpu.period_us"),
    (Limits(cpu=CpuLimits(period_us=1_000_001)), "limits.cpu.period_us"),
    (Limits(cpu=CpuLimits(period_us=MAX)), "limits.cpu.period_us"),
    (Limits(cpu=CpuLimits(weight=0)), "limits.cpu.weight"),
    (Limits(cpu=CpuLimits(weight=10001)), "limits.cpu.weight"),
    (Limits(memory=MemoryLimits(max=-1)), "limits.memory.max"),
    (Limits(memory=MemoryLimits(high=1 << 61)), "limits.memory.high"),
    (Limits(pids=PidsLimits(max=4_194_305)), "limits.pids.max"),
    (Limits(io=IoLimits(weight=0)), "limits.io.weight"),
    (Limits(io=IoLimits(devices=(IoDeviceLimits("sda"),))), "limits.io.devices[0].device"),
    (Limits(io=IoLimits(devices=(IoDeviceLimits("9:9"),))), "limits.io.devices[0].device"),
    (Limits(io=IoLimits(devices=(IoDeviceLimits("8:1"),))), "limits.io.devices[0].device"),
    (Limits(io=IoLimits(devices=(IoDeviceLimits("8:0"), IoDeviceLimits("8:0")))), "limits.io.devices[1].device"),
    (Limits(io=IoLimits(devices=(IoDeviceLimits("8:0", rbps=0),))), "limits.io.devices[0].rbps"),
    (Limits(cpuset=CpusetLimits(cpus="0-9")), "limits.cpuset.cpus"),
    (Limits(cpuset=CpusetLimits(cpus="x")), "limits.cpuset.cpus"),
    (Limits(cpuset=CpusetLimits(mems="1")), "limits.cpuset.mems"),
    (Limits(hugetlb=(HugetlbLimit("4MB", 0),)), "limits.hugetlb[0].page_size"),
    (Limits(hugetlb=(HugetlbLimit("2MB", 0), HugetlbLimit("2MB", 0))), "limits.hugetlb[1].page_size"),
])
def test_out_of_range_values_name_the_field(limits, field):
    bad = limit_violations(limits, host())
    assert [v.field for v in bad] == [field], bad


def test_values_at_the_kernel_bounds_are_accepted():
    ok = Limits(cpu=CpuLimits(quota_us=1000, period_us=1000, weight=1),
                memory=MemoryLimits(max=0, high=MAX, low=MAX, swap_max=0),
                pids=PidsLimits(max=0),
                io=IoLimits(weight=10000, devices=(IoDeviceLimits("8:0", rbps=1, wbps=MAX, weight=10000),)),
                cpuset=CpusetLimits(cpus="0-3", mems="0"),
                hugetlb=(HugetlbLimit("1GB", MAX),))
    assert limit_violations(ok, host()) == []
    assert limit_violations(Limits(cpu=CpuLimits(period_us=1_000_000, quota_us=(1 << 44) - 1)), host()) == []
