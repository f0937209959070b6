"""Shared pieces of the codec benchmarks: the rate collector and the summary line.

Each benchmark that measures a rate puts it in ``benchmark.extra_info`` (which
pytest-benchmark shows in ``--benchmark-json`` output) and also in the
session-wide dict returned by the ``rates`` fixture.  At the end of the run
``pytest_terminal_summary`` prints one line per figure, including
"decode kbgp X M/s, ExaBGP Y M/s, ratio Z" when both decode benchmarks ran.
"""

import platform

import pytest

RATES_KEY = pytest.StashKey[dict]()


def _rates_of(config):
    if RATES_KEY not in config.stash:
        config.stash[RATES_KEY] = {}
    return config.stash[RATES_KEY]


@pytest.fixture(scope="session")
def rates(request):
    """Dict shared by every benchmark of the session: name -> number."""
    return _rates_of(request.config)


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    r = config.stash.get(RATES_KEY, None)
    if not r:
        return
    tr = terminalreporter
    tr.section("kbgp codec figures (median of rounds)")
    tr.write_line(f"machine: {_cpu_model()}, python {platform.python_version()}")
    kbgp = r.get("decode_v4_kbgp")
    exa = r.get("decode_v4_exabgp")
    if kbgp is not None and exa is not None:
        tr.write_line(
            f"decode kbgp {kbgp / 1e6:.1f} M/s, ExaBGP {exa / 1e6:.3f} M/s, "
            f"ratio {kbgp / exa:,.0f}"
            f" (kbgp goal >= 100 M/s: {'met' if kbgp >= 100e6 else 'NOT met'})"
        )
    elif kbgp is not None:
        tr.write_line(f"decode kbgp {kbgp / 1e6:.1f} M/s (ExaBGP benchmark did not run)")
    # key, label, unit, scale, goal (in the unit shown; None = no goal), goal is a minimum?
    labels = (
        ("decode_v4_framed_kbgp", "framing + decode IPv4", "M prefixes/s", 1e6, 100, True),
        ("encode_v4_kbgp", "encode IPv4", "M prefixes/s", 1e6, 50, True),
        ("decode_v6_kbgp", "decode IPv6 MP_REACH", "M prefixes/s", 1e6, None, True),
        ("attrs_hot_ns", "attribute decode+intern, shared set", "ns/UPDATE", 1, 1000, False),
        ("attrs_cold_ns", "attribute decode+intern, distinct sets", "ns/UPDATE", 1, None, False),
        ("kernel_kbgp_install_routes_per_s", "kernel install, kbgp KernelSyncer", "routes/s", 1,
         None, True),
        ("kernel_ip_install_routes_per_s", "kernel install, ip -batch", "routes/s", 1, None, True),
        ("kernel_bird_install_routes_per_s", "kernel install, BIRD 2", "routes/s", 1, None, True),
        ("kernel_kbgp_remove_routes_per_s", "kernel remove, kbgp KernelSyncer", "routes/s", 1,
         None, True),
        ("kernel_ip_remove_routes_per_s", "kernel remove, ip -batch", "routes/s", 1, None, True),
        ("kernel_bird_remove_routes_per_s", "kernel remove, BIRD 2", "routes/s", 1, None, True),
    )
    for key, label, unit, scale, goal, at_least in labels:
        if key not in r:
            continue
        value = r[key] / scale
        line = f"{label}: {value:,.1f} {unit}"
        if goal is not None:
            met = value >= goal if at_least else value < goal
            sign = ">=" if at_least else "<"
            line += f" (goal {sign} {goal:,} {unit}: {'met' if met else 'NOT met'})"
        tr.write_line(line)
