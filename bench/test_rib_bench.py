"""Benchmarks of the C route table (kbgp/_fast/rib.pyx) at full-table scale.

Run from the repository root after building the extensions in place:

    python3 setup.py build_ext --inplace -q
    python3 -m pytest bench/test_rib_bench.py -p no:cacheprovider --benchmark-only

Each benchmark builds its table in the pedantic ``setup`` (not timed), then
times one batch call on 1,000,000 IPv4 /24s:

- insert: one source, one attribute id, into an empty table (every prefix new);
- second source: the same prefixes from a second source with a better
  attribute set (every best path changes; every prefix becomes two paths);
- drop_source: a source holding 1M routes goes away (every best path changes);
- export: every best path through export_diff (a full table to one neighbour), grouped by outgoing attribute id.

Figures come from the median round and go to ``benchmark.extra_info`` and to
a "kbgp RIB figures" section printed when this module finishes (in the style
of the codec summary of bench/conftest.py, which prints only the figures it
knows).  The goal (insert < 100 ms, i.e.
>= 10 M routes/s) is reported, not asserted: it depends on the machine.
"""

import platform

import pytest

from kbgp._fast.rib import RouteTable, export_diff
from kbgp._fast.wire import PrefixArray

COUNT = 1_000_000
FIRST = "10.0.0.0/24"
GOAL_INSERT_S = 0.100
PEDANTIC = dict(rounds=3, iterations=1, warmup_rounds=1)

SRC_A, SRC_B = 1, 2
ATTR_A, ATTR_B = 10, 11   # ATTR_B has the higher LOCAL_PREF

FIGURES = {}


@pytest.fixture(scope="module")
def prefixes():
    return PrefixArray.sequence(FIRST, COUNT)


@pytest.fixture(scope="module", autouse=True)
def rib_summary(request):
    """Print the figures of this module when it finishes."""
    yield
    plugins = request.config.pluginmanager
    tr = plugins.getplugin("terminalreporter")
    capture = plugins.getplugin("capturemanager")
    if not FIGURES or tr is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        tr.write_line("")
        tr.section("kbgp RIB figures (median of rounds)")
        tr.write_line(f"machine: {_cpu_model()}, python {platform.python_version()}")
        for line in FIGURES.values():
            tr.write_line(line)


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def new_table():
    t = RouteTable(1)
    t.set_source(SRC_A, router_id="192.0.2.1", address="192.0.2.1")
    t.set_source(SRC_B, router_id="192.0.2.2", address="192.0.2.2")
    t.set_attr(ATTR_A, local_pref=100, as_path_len=1, neighbor_as=65001)
    t.set_attr(ATTR_B, local_pref=200, as_path_len=1, neighbor_as=65002)
    return t


def median_seconds(benchmark):
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.median


def record(benchmark, key, label, count, goal_s=None):
    seconds = median_seconds(benchmark)
    if seconds is None:  # --benchmark-disable
        return
    rate = count / seconds
    benchmark.extra_info["routes"] = count
    benchmark.extra_info["ms"] = round(seconds * 1e3, 2)
    benchmark.extra_info["routes_per_s"] = rate
    benchmark.extra_info["M_routes_per_s"] = round(rate / 1e6, 3)
    line = f"{label}: {seconds * 1e3:,.1f} ms, {rate / 1e6:,.1f} M routes/s"
    if goal_s is not None:
        met = seconds < goal_s
        benchmark.extra_info["goal_ms"] = goal_s * 1e3
        benchmark.extra_info["goal_met"] = met
        line += f" (goal < {goal_s * 1e3:,.0f} ms: {'met' if met else 'NOT met'})"
    FIGURES[key] = line


def record_memory(benchmark, key, label, table):
    per_route = table.memory_bytes() / len(table)
    benchmark.extra_info["memory_bytes"] = table.memory_bytes()
    benchmark.extra_info["memory_bytes_per_prefix"] = round(per_route, 2)
    benchmark.extra_info["paths"] = table.path_count()
    FIGURES[key] = (f"{label}: {per_route:.1f} bytes/prefix "
                    f"({table.memory_bytes() / 2**20:.1f} MiB, {table.path_count():,} paths)")


def test_insert_1m_one_source(benchmark, prefixes):
    holder = {}

    def setup():
        holder["t"] = new_table()
        return (holder["t"],), {}

    def run(t):
        return t.update(SRC_A, prefixes, ATTR_A)

    changes = benchmark.pedantic(run, setup=setup, **PEDANTIC)
    table = holder["t"]
    assert len(changes) == COUNT and len(table) == COUNT
    record(benchmark, "rib_insert_v4", "insert 1M IPv4 /24, one source", COUNT, GOAL_INSERT_S)
    record_memory(benchmark, "rib_bytes_one_path", "memory, one path a prefix", table)


def test_insert_1m_second_source_better(benchmark, prefixes):
    holder = {}

    def setup():
        t = new_table()
        t.update(SRC_A, prefixes, ATTR_A)
        holder["t"] = t
        return (t,), {}

    def run(t):
        return t.update(SRC_B, prefixes, ATTR_B)

    changes = benchmark.pedantic(run, setup=setup, **PEDANTIC)
    table = holder["t"]
    assert len(changes) == COUNT and table.path_count() == 2 * COUNT
    assert changes.old_sources()[:3] == [SRC_A] * 3 and changes.new_sources()[:3] == [SRC_B] * 3
    record(benchmark, "rib_second_source_v4", "same 1M from a better second source", COUNT)
    record_memory(benchmark, "rib_bytes_two_paths", "memory, two paths a prefix", table)


def test_drop_source_1m(benchmark, prefixes):
    holder = {}

    def setup():
        t = new_table()
        t.update(SRC_A, prefixes, ATTR_A)
        holder["t"] = t
        return (t,), {}

    def run(t):
        return t.drop_source(SRC_A)

    changes = benchmark.pedantic(run, setup=setup, **PEDANTIC)
    assert len(changes) == COUNT and len(holder["t"]) == 0
    record(benchmark, "rib_drop_source_v4", "drop_source of 1M (table empties)", COUNT)


def test_drop_better_source_1m_two_paths(benchmark, prefixes):
    holder = {}

    def setup():
        t = new_table()
        t.update(SRC_A, prefixes, ATTR_A)
        t.update(SRC_B, prefixes, ATTR_B)
        holder["t"] = t
        return (t,), {}

    def run(t):
        return t.drop_source(SRC_B)

    changes = benchmark.pedantic(run, setup=setup, **PEDANTIC)
    assert len(changes) == COUNT and holder["t"].path_count() == COUNT
    record(benchmark, "rib_drop_best_v4", "drop_source of the best of two paths, 1M", COUNT)


def test_export_best_grouped_1m(benchmark, prefixes):
    holder = {}

    def setup():
        t = new_table()
        t.update(SRC_A, prefixes, ATTR_A)
        holder["t"] = t
        return (t,), {}

    def run(t):
        return export_diff(t.export_best(), lambda src, aid, cls: 42)

    groups, withdrawals, added = benchmark.pedantic(run, setup=setup, **PEDANTIC)
    assert list(groups) == [42] and len(groups[42]) == COUNT and len(withdrawals) == 0 and added == COUNT
    record(benchmark, "rib_export_v4", "export every best + export_diff, 1M", COUNT)


def test_export_diff_and_encode_changes_1m(benchmark, prefixes):
    """The export path of one update group for a batch of 1M best-path
    changes: export_diff, then the UPDATEs packed (issue goal: at least 10 M
    prefixes/s)."""
    from kbgp._fast.attrs import PathAttributes, encode_attributes, encode_updates

    attrs = encode_attributes(PathAttributes(origin=0, as_path=[(2, (65001,))], next_hop="192.0.2.1"))
    holder = {}

    def setup():
        t = new_table()
        holder["changes"] = t.update(SRC_A, prefixes, ATTR_A)
        return (holder["changes"],), {}

    def run(changes):
        groups, withdrawals, added = export_diff(changes, lambda src, aid, cls: 42)
        return b"".join(encode_updates(arr, attrs) for arr in groups.values()), added

    data, added = benchmark.pedantic(run, setup=setup, **PEDANTIC)
    assert added == COUNT and len(data) > COUNT * 4
    record(benchmark, "rib_export_encode_v4", "export_diff + encode UPDATEs of 1M changes", COUNT)
