"""`make bench`: the service's CPU cost per answer next to a bare Litestar endpoint, latency under a slow
upstream, memory, and cost growth with the number of subjects. Prints a table and writes JSON.

Everything runs for real on this machine: redis-server, the emulator (own process), the service (own process,
the same ASGI server as `make run`), the baseline app (own process: the yardstick issue #16 names, a bare Litestar
JSON POST under stock uvicorn + uvloop + httptools), and this load generator.

The CPU rows issue #16 sets targets on are measured in interleaved rounds (`--rounds`): each round reads the bare
endpoint, then every such scenario, then the bare endpoint again, and a scenario's ratio is the median over rounds
of its CPU over its round's two bare readings. A shared 2-core VM drifts by tens of percent within a minute; drift
then lands on both sides of each ratio instead of on one reading taken once.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import redis
import uvloop

from bench.burst import burst_lines, burst_on_fresh_process, spawn_service, wait_ready
from bench.loadgen import build_request, run_load
from bench.procstat import cpu_seconds, descendants, open_fds, peak_rss_mb, rss_mb
from bench.serve_baseline import SERVERS
from bench.tracing import TracedService, tracing_installed
from service.config import LimitRule, LimitsConfig
from service.ratelimit.redis import GCRA_SCRIPT
from service.ratelimit.rules import checks_for
from tests.support.emulator import EmulatorProcess
from tests.support.forward_proxy import ForwardProxy
from tests.support.redis_proc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-issuer-secret-0123456789-abcdefghijkl"
ISSUER = "https://bench.test/"
BROWSER_ORIGIN = "https://app.bench.test"
CONFIG = f"""
[[issuers]]
issuer = "{ISSUER}"
audiences = ["livetoken"]
algorithms = ["HS256"]
hs256_secret_env = "BENCH_SECRET"

[server]
cors_allow_origins = ["{BROWSER_ORIGIN}"]  # the browser row sends an Origin header: CORS on, as a web app sees it

[limits]
subject = [{{ rate = 100000000, period = "1h", burst = 100000000 }}]
redis_timeout = "1s"  # with 200 callers in flight the event loop, not Redis, decides how long a reply takes

[upstream]
attempt_timeout = "2s"
deadline = "3s"

[profiles.voice]
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
voice = "Puck"
system_instruction = "Be brief."
input_audio_transcription = true
output_audio_transcription = true

[[budgets]]  # checked in the rate limit's one round trip: the issue rows count Redis calls per token
layer = "subject"
units = 100000000
period = "1d"
profiles = ["voice"]

[profiles.limited]
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
limits = [{{ rate = 1, period = "1h", burst = 1 }}]
"""


def token_for(sub: str, jti: int = 0) -> str:
    """A caller JWT from the bench issuer (`jti` makes tokens of one subject distinct)."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "livetoken", "sub": sub, "iat": now, "exp": now + 3600, "jti": str(jti)}
    return jwt.encode(claims, SECRET, "HS256")


_fresh = iter(range(1, 10**9))


def issue_requests(port: int, subjects: list[str], count: int, origin: str | None = None) -> list[bytes]:
    """`count` token requests cycling over `subjects`, each with a JWT the service has not seen before
    (the service remembers verified JWTs for a minute, so reusing them would hide the verification cost)."""
    return [
        post("/v1/tokens", port, token_for(subjects[i % len(subjects)], next(_fresh)), b'{"profile":"voice"}', origin)
        for i in range(count)
    ]


def post(path: str, port: int, token: str | None, body: bytes, origin: str | None = None) -> bytes:
    """Serialized POST with a JSON body (and an Origin header, as a browser sends)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if origin:
        headers["Origin"] = origin
    return build_request("POST", path, f"127.0.0.1:{port}", headers, body)


def preflight_request(port: int) -> bytes:
    """A browser's CORS preflight for POST /v1/tokens from BROWSER_ORIGIN (allowed by the bench config): no body,
    answered 204."""
    headers = {
        "Origin": BROWSER_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    return build_request("OPTIONS", "/v1/tokens", f"127.0.0.1:{port}", headers)


def merged(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one scenario as one row: CPU and throughput averaged, the worst p99, statuses added up."""
    statuses: dict[str, int] = {}
    for r in rounds:
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "requests": sum(r["requests"] for r in rounds),
        "statuses": statuses,
        "errors": sum(r["errors"] for r in rounds),
        "cpu_ms_per_request": round(sum(r["cpu_ms_per_request"] for r in rounds) / len(rounds), 4),
        "throughput_rps": round(sum(r["throughput_rps"] for r in rounds) / len(rounds), 1),
        "p50_ms": round(sum(r["p50_ms"] for r in rounds) / len(rounds), 2),
        "p99_ms": max(r["p99_ms"] for r in rounds),
    }


def say(message: str) -> None:
    """Progress, on stderr."""
    print(message, file=sys.stderr, flush=True)


def wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until `url` answers."""
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def connections_to(pid: int, peer_port: int) -> int:
    """The process's established TCP connections to `peer_port` (its pooled upstream connections), from /proc:
    its socket inodes matched against the kernel's TCP tables."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            # sl, local address, remote address, state (01 = established), queues, timers, retransmits, uid,
            # timeout, inode
            fields = row.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == peer_port and fields[9] in inodes:
                count += 1
    return count


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds of the process and its live descendants, to the nanosecond.

    Read from the kernel's CPU clock of each process (clock_gettime on the id glibc's clock_getcpuclockid() makes:
    all its threads, user and system), not from /proc/<pid>/stat's 10 ms ticks: a round's few hundred bare requests
    use about 0.1 s of CPU, which ticks would read to within 10%. Falls back to the ticks where the clock is missing.
    """
    total = 0.0
    for p in (pid, *descendants(pid)):
        try:
            total += time.clock_gettime(((~p) << 3) | 2)  # CPUCLOCK_SCHED of the whole process (Linux)
        except OSError:
            try:
                total += cpu_seconds(p)
            except FileNotFoundError:  # exited since listed
                continue
    return total


async def measure(  # noqa: PLR0917 - a measurement is described by its arguments
    pid: int, port: int, requests: list[bytes], total: int, concurrency: int, stagger: float = 0.0
) -> dict[str, Any]:
    """Run the load and report the server's CPU per answered request, throughput and latency."""
    before = process_cpu_seconds(pid)
    gc.disable()  # the load generator's own collector pauses would read as the service's latency
    try:
        result = await run_load(
            "127.0.0.1",
            port,
            lambda i: requests[i % len(requests)],
            total=total,
            concurrency=concurrency,
            stagger=stagger,
        )
    finally:
        gc.enable()
    cpu = process_cpu_seconds(pid) - before
    return {
        "requests": result.count,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "errors": result.errors,
        "cpu_ms_per_request": round(cpu / max(1, result.count) * 1000, 4),
        "throughput_rps": round(result.count / result.elapsed, 1),
        "p50_ms": round(result.percentile(50) * 1000, 2),
        "p99_ms": round(result.percentile(99) * 1000, 2),
    }


def git_commit() -> str | None:
    """The commit measured (with '+' when the work tree has changes), so runs can be compared."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, check=False
        )
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


# Issue #16's targets: (what, JSON path, limit, unit). The CPU targets are ratios between figures of the same
# run (to the bare endpoint under stock uvicorn, or between two rows), each the median over interleaved rounds, so
# a busy or slower host moves both sides; benchmarks, not timed tests.
TARGETS = (
    ("issued token CPU / bare endpoint CPU", ("issue", "ratio_to_baseline"), 4.0, "x"),
    ("401 CPU / bare endpoint CPU", ("reject_401", "ratio_to_baseline"), 1.2, "x"),
    ("429 (new JWT each) CPU / bare CPU", ("reject_429_fresh_jwt", "ratio_to_baseline"), 2.0, "x"),
    ("429 (one JWT flooding) CPU / bare CPU", ("reject_429", "ratio_to_baseline"), 1.5, "x"),
    ("browser token CPU / plain token CPU", ("browser_vs_plain",), 1.10, "x"),
    ("CORS preflight CPU / 401 CPU", ("preflight_vs_401",), 1.0, "x"),
    ("cold start p99, first wave / second", ("cold_start", "p99_ratio"), 1.20, "x"),
    ("Redis round trips per token, budget on", ("issue", "redis_calls_per_token"), 1.0, ""),
    ("service peak RSS", ("service_peak_rss_mb",), 250.0, "MB"),
    ("errors, +300 ms upstream, 200 callers", ("slow_upstream", "errors"), 0.0, ""),
    ("token CPU, 100k subjects / 1 subject", ("growth_100k_vs_1",), 1.15, "x"),
    ("p99, +300 ms upstream, 200 callers", ("slow_upstream", "p99_ms"), 340.0, "ms"),
)


def spread(values: list[float]) -> str:
    """The range of per-round figures, as "lowest-highest"."""
    return f"{min(values):.2f}-{max(values):.2f}"


def by_round(out: dict[str, Any], path: tuple[str, ...]) -> list[float] | None:
    """The per-round figures behind a target's value, if it was measured in interleaved rounds."""
    if path[-1] == "ratio_to_baseline":
        found = out[path[0]].get("ratios_by_round")
    else:
        found = out.get(f"{path[0]}_by_round") if len(path) == 1 else None
    return found if isinstance(found, list) else None


def target_lines(out: dict[str, Any]) -> list[str]:
    """One line per target: measured value, limit, met or missed (and the per-round range, if in rounds)."""
    lines = []
    for label, path, limit, unit in TARGETS:
        value: Any = out
        for key in path:
            value = value[key]
        mark = "met" if value <= limit else "MISSED"
        rounds = by_round(out, path)
        ranged = f"  (rounds {spread(rounds)})" if rounds else ""
        lines.append(f"  {label:39} {value:>9g} {unit:2} (target <= {limit:g}) {mark:6}{ranged}".rstrip())
    return lines


def start_baseline(port: int, server: str) -> subprocess.Popen[bytes]:
    """The bare Litestar endpoint under `server` (see bench/serve_baseline.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.serve_baseline", str(port), server],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def compare_servers(n: int, c: int) -> dict[str, Any]:
    """The bare endpoint under each candidate ASGI server, one at a time: what each costs per request."""
    figures: dict[str, Any] = {}
    for server in SERVERS:
        port = free_port()
        proc = start_baseline(port, server)
        try:
            wait_http(f"http://127.0.0.1:{port}/echo", proc)
            echo = [post("/echo", port, None, b'{"profile":"voice"}')]
            await measure(proc.pid, port, echo, 1000, c)
            figures[server] = await measure(proc.pid, port, echo, n, c)
        finally:
            proc.terminate()
            proc.wait(10)
    return figures


def redis_calls(redis_url: str) -> int:
    """Script calls Redis has answered so far (INFO commandstats; the commands a script runs inside are counted
    apart, and nothing else touches Redis on the token path: tests/service/test_operators.py watches MONITOR)."""
    with redis.Redis.from_url(redis_url) as client:
        stats = client.info("commandstats")
    return sum(int(stats.get(k, {}).get("calls", 0)) for k in ("cmdstat_evalsha", "cmdstat_eval"))


def prefill_subjects(redis_url: str, n: int) -> float:
    """Create `n` active subject buckets as the service would (10/min, burst 5 per subject: keys live ~12 s);
    returns Redis bytes per active subject."""
    client = redis.Redis.from_url(redis_url)
    before = int(client.info("memory")["used_memory"])
    gcra = client.register_script(GCRA_SCRIPT)
    limits = LimitsConfig(subject=[LimitRule(rate=10, period=60, burst=5)])  # type: ignore[arg-type]
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        c = checks_for(limits, "voice", [], f"{ISSUER}\x1fuser-{i}", None)[0]
        for _ in range(2):  # two requests each: the bucket's TTL is then two emission intervals (12 s)
            # ARGV as the limiter sends it: no blocks, charge, then one GCRA rule (kind 0, interval, burst, cost 1).
            interval = max(1, round(c.period / c.rate * 1e6))
            gcra(keys=[f"livetoken:gcra:{c.key}"], args=[0, 1, 0, interval, c.burst, 1], client=pipe)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    after = int(client.info("memory")["used_memory"])
    client.close()
    return (after - before) / n


async def cold_start(exe: str, config: Path, env: dict[str, str], log: Path, upstream_port: int) -> dict[str, Any]:
    """A new service process (as `make run` starts it), started while the upstream is slow: once GET /readyz
    answers 200, 200 callers at once, each with a fresh JWT for a subject not seen before (one request per
    connection), then a second wave of 200 the same way. The process is stopped afterwards."""
    port = free_port()
    waves = [issue_requests(port, [f"cold-{w * 200 + i}" for i in range(200)], 200) for w in range(2)]
    started = time.perf_counter()
    proc = spawn_service(exe, config, port, env, log)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        figures: dict[str, Any] = {"ready_after_s": round(time.perf_counter() - started, 2)}
        upstream = [connections_to(proc.pid, upstream_port)]
        for key, requests in zip(("first_wave", "second_wave"), waves, strict=True):
            figures[key] = await measure(proc.pid, port, requests, 200, 200)
            upstream.append(connections_to(proc.pid, upstream_port))
        figures["upstream_connections_ready_first_second"] = upstream
    finally:
        proc.terminate()
        proc.wait(10)
    figures["p99_ratio"] = round(figures["first_wave"]["p99_ms"] / figures["second_wave"]["p99_ms"], 3)
    return figures


# The CPU rows measured in interleaved rounds, each against the bare readings of its own round (see the module's
# docstring). Odd rounds run them in reverse order, so no row always follows the same one or a bare reading.
INTERLEAVED = ("issue", "issue_browser", "reject_401", "preflight", "reject_429", "reject_429_fresh_jwt")


def median_ratio(tops: list[dict[str, Any]], bottoms: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """Round by round CPU per request of `tops` over that of `bottoms`: the median (unrounded), and each round's
    ratio (to 3 places)."""
    ratios = [t["cpu_ms_per_request"] / b["cpu_ms_per_request"] for t, b in zip(tops, bottoms, strict=True)]
    return statistics.median(ratios), [round(r, 3) for r in ratios]


async def interleaved_rounds(
    plan: dict[str, list[list[bytes]]],
    *,
    per_round: dict[str, int],
    service: tuple[int, int],
    bare: tuple[int, int, int],
    concurrency: int,
    redis_url: str,
) -> dict[str, Any]:
    """The INTERLEAVED rows in rounds: the bare endpoint, every row (`plan[row][round]`, `per_round[row]` requests
    each) against the service, the bare endpoint again. `service` is (pid, port), `bare` (pid, port, requests per
    reading). Returns the rows of `out` this fills: "baseline" (every reading), each row with its median ratio to
    its rounds' bare readings, "browser_vs_plain" and "preflight_vs_401"."""
    (pid, port), (bare_pid, bare_port, bare_n), c = service, bare, concurrency
    echo = [post("/echo", bare_port, None, b'{"profile":"voice"}')]
    rounds = len(plan["issue"])
    readings: list[dict[str, Any]] = []  # the bare endpoint's, two a round
    bare_of_round: list[dict[str, Any]] = []  # per round, its two readings as one (their mean CPU)
    by_key: dict[str, list[dict[str, Any]]] = {key: [] for key in INTERLEAVED}
    calls = 0
    for r in range(rounds):
        order = INTERLEAVED if r % 2 == 0 else INTERLEAVED[::-1]
        say(
            f"round {r + 1}/{rounds}: bare Litestar JSON POST x{bare_n}, "
            + ", ".join(f"{key} x{per_round[key]}" for key in order)
            + f", bare again x{bare_n} ..."
        )
        these = [await measure(bare_pid, bare_port, echo, bare_n, c)]
        for key in order:
            calls_before = redis_calls(redis_url) if key == "issue" else 0
            by_key[key].append(await measure(pid, port, plan[key][r], per_round[key], c))
            if key == "issue":
                calls += redis_calls(redis_url) - calls_before
        these.append(await measure(bare_pid, bare_port, echo, bare_n, c))
        readings += these
        bare_of_round.append(merged(these))
    out: dict[str, Any] = {"baseline": merged(readings)}
    out["baseline"]["cpu_ms_by_reading"] = [b["cpu_ms_per_request"] for b in readings]
    for key in INTERLEAVED:
        out[key] = merged(by_key[key])
        ratio, ratios = median_ratio(by_key[key], bare_of_round)
        out[key]["ratio_to_baseline"] = round(ratio, 2)
        out[key]["ratios_by_round"] = ratios
    out["issue"]["redis_calls_per_token"] = round(calls / out["issue"]["requests"], 3)
    # Row against row, round by round too: the median of each round's browser/plain (and preflight/401) CPU, the
    # two measured in the same round, rather than the ratio of their means over the run.
    for key, top, bottom in (
        ("browser_vs_plain", "issue_browser", "issue"),
        ("preflight_vs_401", "preflight", "reject_401"),
    ):
        ratio, out[f"{key}_by_round"] = median_ratio(by_key[top], by_key[bottom])
        out[key] = round(ratio, 3)
    return out


async def through_proxy(  # noqa: PLR0917 - one scenario's parts
    exe: str, config: Path, env: dict[str, str], tmp: Path, users: list[str], count: int, concurrency: int
) -> dict[str, Any]:
    """Issued tokens from a second service process whose mints go through a real forward proxy (proxy.py, CONNECT
    tunnels): the cost of the egress proxy to the service (its own CPU) and to callers (latency)."""
    (tmp / "proxy").mkdir()
    proxy = ForwardProxy(tmp / "proxy")
    proxy.start()
    port = free_port()
    service = spawn_service(
        exe, config, port, {**env, "HTTPS_PROXY": proxy.url(), "NO_PROXY": ""}, tmp / "service-proxied.log"
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", service)
        say(f"issue through an egress proxy: POST /v1/tokens x{count}, mints tunnelled through proxy.py ...")
        await measure(service.pid, port, issue_requests(port, users, 500), 500, concurrency)
        row = await measure(service.pid, port, issue_requests(port, users, count), count, concurrency)
    finally:
        service.terminate()
        service.wait(10)
        proxy.stop()
    # proxy.py logs a tunnel when it closes: the pooled ones are in the log once the service has stopped.
    row["tunnels"] = sum(1 for line in proxy.access() if line.startswith("CONNECT "))
    return row


BURSTS = (1000, 5000)
BURST_QUEUE_TIMEOUT = 2.0  # server.queue_timeout's default


async def burst_rows(
    exe: str, config: Path, env: dict[str, str], tmp: Path, bursts: tuple[int, ...] = BURSTS
) -> list[dict[str, Any]]:
    """Issue #23's bursts, each on a fresh process (defaults, but room for 5000 connections): upstream +300 ms
    must already be set."""
    burst_config = tmp / "bench-burst.toml"
    burst_config.write_text(CONFIG.replace("[server]\n", "[server]\nmax_connections = 8192\n", 1))
    rows = []
    for callers in bursts:
        say(f"burst: a fresh process, upstream +300 ms, {callers} callers in the same millisecond ...")
        log = tmp / f"service-burst-{callers}.log"
        rows.append(await burst_on_fresh_process(exe, burst_config, env, log, callers, token_for))
    return rows


def start_upstreams() -> tuple[Path, RedisProcess, EmulatorProcess, Path]:
    """A scratch directory, redis-server, the emulator (unpaced) and the bench config: what every run stands on."""
    tmp = Path(tempfile.mkdtemp(prefix="livetoken-bench-"))
    redis_proc = RedisProcess()
    redis_proc.start()
    emulator = EmulatorProcess(tmp, "--speed", "0")
    emulator.start()
    config = tmp / "bench.toml"
    config.write_text(CONFIG)
    return tmp, redis_proc, emulator, config


async def run_burst_only(bursts: tuple[int, ...]) -> dict[str, Any]:
    """`make bench ARGS=--only-burst`: the burst rows alone, on their own Redis and emulator."""
    tmp, redis_proc, emulator, config = start_upstreams()
    try:
        emulator.set_latency(300)
        exe = str(Path(sys.executable).parent / "livetoken")
        rows = await burst_rows(exe, config, _env(emulator, redis_proc), tmp, bursts)
    finally:
        emulator.stop()
        redis_proc.close()
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "commit": git_commit()}
    return {"machine": machine, "bursts": rows}


def _env(emulator: EmulatorProcess, redis_proc: RedisProcess) -> dict[str, str]:
    return {
        **os.environ,
        "BENCH_SECRET": SECRET,
        "LIVETOKEN_GEMINI_API_KEY": emulator.api_key,
        "LIVETOKEN_GEMINI_BASE_URL": emulator.base_url,
        "LIVETOKEN_GEMINI_CA_FILE": emulator.ca_file,
        "LIVETOKEN_REDIS_URL": redis_proc.url,
        "LIVETOKEN_LOG_LEVEL": "info",  # the default: every issued token writes its audit line
        "LIVETOKEN_LOG_FORMAT": "json",
    }


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """All scenarios, in one run so the ratios hold."""
    tmp, redis_proc, emulator, config = start_upstreams()
    env = _env(emulator, redis_proc)
    port, base_port = free_port(), free_port()
    exe = str(Path(sys.executable).parent / "livetoken")
    service = spawn_service(exe, config, port, env, tmp / "service.log")
    baseline = start_baseline(base_port, "uvicorn")  # issue #16's yardstick: stock uvicorn + uvloop + httptools
    traced = [
        TracedService(exe, config, env, tmp / f"traced-{ratio:g}.log", ratio)
        for ratio in ((1.0, 0.01) if args.tracing else ())
    ]
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "commit": git_commit()},
        "server": "uvicorn + uvloop + httptools (service.server.serve_app)",
        "baseline_server": "stock uvicorn + uvloop + httptools (bench/serve_baseline.py, 'uvicorn')",
        "rounds": args.rounds,
    }
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", service)
        wait_http(f"http://127.0.0.1:{base_port}/echo", baseline)
        for each in traced:
            wait_http(f"http://127.0.0.1:{each.port}/healthz", each.proc)
        n, c, rounds = args.requests, args.concurrency, args.rounds
        # Requests per round: the totals stay those of one pass each (a token row n/2, a refusal row n, the bare
        # endpoint n per pass: read twice a round here).
        per_round = {key: max(1, n // (2 * rounds) if key.startswith("issue") else n // rounds) for key in INTERLEAVED}
        bare_per_round = max(1, n // rounds)
        echo = [post("/echo", base_port, None, b'{"profile":"voice"}')]
        users = [f"user-{i}" for i in range(1000)]
        say("signing caller JWTs ...")
        repeat = [post("/v1/tokens", port, token_for(u), b'{"profile":"voice"}') for u in users]
        bad = token_for("mallory")[:-4] + "AAAA"
        reject401 = [post("/v1/tokens", port, bad, b'{"profile":"voice"}')]
        preflight = [preflight_request(port)]
        flood = token_for("flooder")
        reject429 = [post("/v1/tokens", port, flood, b'{"profile":"limited"}')]

        def fresh_429(count: int) -> list[bytes]:
            """`count` requests of the flooding caller, over its limit, each with a JWT not seen before."""
            return [
                post("/v1/tokens", port, token_for("flooder", next(_fresh)), b'{"profile":"limited"}')
                for _ in range(count)
            ]

        # Each round's requests. The rows with a new JWT per request get their own JWTs in every round (the
        # service remembers a verified JWT for a minute: a JWT from an earlier round would skip verification).
        plan: dict[str, list[list[bytes]]] = {
            "issue": [issue_requests(port, users, per_round["issue"]) for _ in range(rounds)],
            "issue_browser": [
                issue_requests(port, users, per_round["issue_browser"], origin=BROWSER_ORIGIN) for _ in range(rounds)
            ],
            "reject_401": [reject401] * rounds,
            "preflight": [preflight] * rounds,
            "reject_429": [reject429] * rounds,
            "reject_429_fresh_jwt": [fresh_429(per_round["reject_429_fresh_jwt"]) for _ in range(rounds)],
        }
        say("warming up ...")
        await measure(baseline.pid, base_port, echo, 1000, c)
        await measure(service.pid, port, issue_requests(port, users, 500), 500, c)
        await measure(service.pid, port, repeat, len(repeat), c)  # these callers' JWTs are now known
        await measure(service.pid, port, reject401 + reject429, 500, c)
        warm = await measure(service.pid, port, preflight, 200, c)
        if warm["statuses"] != {"204": 200}:
            raise RuntimeError(f"CORS preflight: expected 200 answers 204, got {warm['statuses']}")
        out |= await interleaved_rounds(
            plan,
            per_round=per_round,
            service=(service.pid, port),
            bare=(baseline.pid, base_port, bare_per_round),
            concurrency=c,
            redis_url=redis_proc.url,
        )
        for each, key in zip(traced, ("issue_traced", "issue_traced_1pct")[: len(traced)], strict=True):
            say(f"issue, traced: POST /v1/tokens x{n // 2}, {key}, spans exported over OTLP ...")
            await measure(each.pid, each.port, issue_requests(each.port, users, 500), 500, c)
            out[key] = await measure(each.pid, each.port, issue_requests(each.port, users, n // 2), n // 2, c)
            out[key]["spans_per_token"] = round(each.spans_exported() / (500 + n // 2), 2)
        out["issue_via_proxy"] = await through_proxy(exe, config, env, tmp, users, n // 2, c)
        out["issue_via_proxy"]["vs_direct"] = round(
            out["issue_via_proxy"]["cpu_ms_per_request"] / out["issue"]["cpu_ms_per_request"], 3
        )
        say(f"issue: POST /v1/tokens x{n // 2} (1000 subjects whose JWTs were verified before) ...")
        await measure(service.pid, port, repeat, len(repeat), c)  # verified again within the minute it remembers
        out["issue_known_jwt"] = await measure(service.pid, port, repeat, n // 2, c)
        say("subjects: prefilling 100k active subjects in Redis ...")
        out["redis_bytes_per_subject"] = round(prefill_subjects(redis_proc.url, 100_000), 1)
        one = issue_requests(port, ["user-0"], n // 2)
        many = issue_requests(port, [f"user-{i}" for i in range(0, 100_000, 97)], n // 2)
        out["growth_1_subject"] = await measure(service.pid, port, one, n // 2, c)
        out["growth_100k_subjects"] = await measure(service.pid, port, many, n // 2, c)
        emulator.set_latency(300)
        fds_before = open_fds(service.pid)
        say("latency: upstream +300 ms, 200 callers starting in the same millisecond, cold upstream pool ...")
        slow = issue_requests(port, users, args.slow_requests)
        out["slow_upstream_lockstep"] = await measure(service.pid, port, slow, args.slow_requests, 200)
        say("latency: upstream +300 ms, 200 callers starting in the same millisecond, warm upstream pool ...")
        slow = issue_requests(port, users, args.slow_requests)
        out["slow_upstream_lockstep_warm"] = await measure(service.pid, port, slow, args.slow_requests, 200)
        say("latency: upstream +300 ms, 200 callers arriving over 300 ms, warm upstream pool ...")
        slow = issue_requests(port, users, args.slow_requests)
        out["slow_upstream"] = await measure(service.pid, port, slow, args.slow_requests, 200, stagger=0.3)
        out["slow_upstream"]["open_fds_before_after"] = [fds_before, open_fds(service.pid)]
        say("cold start: a new service process under upstream +300 ms, ready, then 2 waves of 200 callers at once ...")
        cold_log = tmp / "service-cold.log"
        out["cold_start"] = await cold_start(exe, config, env, cold_log, urlsplit(emulator.base_url).port or 443)
        out["bursts"] = await burst_rows(exe, config, env, tmp, args.bursts)
        emulator.clear_faults()
        out["service_peak_rss_mb"] = round(peak_rss_mb(service.pid), 1)
        out["service_rss_mb"] = round(rss_mb(service.pid), 1)
        service.terminate()
        baseline.terminate()
        service.wait(10)
        baseline.wait(10)
        say("servers: the bare endpoint under each candidate ASGI server ...")
        out["servers"] = await compare_servers(n, c)
    finally:
        for proc in (service, baseline):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        for each in traced:
            each.close()
        emulator.stop()
        redis_proc.close()
    base = out["baseline"]["cpu_ms_per_request"]  # the mean of all bare readings, for the rows not interleaved
    for key in ("issue_known_jwt", "growth_1_subject", "growth_100k_subjects"):
        out[key]["ratio_to_baseline"] = round(out[key]["cpu_ms_per_request"] / base, 2)
    for key in ("issue_traced", "issue_traced_1pct"):
        if key in out:
            out[key]["ratio_to_baseline"] = round(out[key]["cpu_ms_per_request"] / base, 2)
            out[key]["vs_untraced"] = round(out[key]["cpu_ms_per_request"] / out["issue"]["cpu_ms_per_request"], 3)
    growth = out["growth_100k_subjects"]["cpu_ms_per_request"] / out["growth_1_subject"]["cpu_ms_per_request"]
    out["growth_100k_vs_1"] = round(growth, 3)
    return out


SERVER_LABELS = {  # bench/serve_baseline.py's SERVERS, as the servers table names them
    "uvicorn": "uvicorn+uvloop+httptools, stock (yardstick)",
    "service": "the service's own server (serve_app)",
    "uvicorn-asyncio-h11": "uvicorn + asyncio + h11",
    "granian": "granian (ASGI, uvloop, 1 worker)",
}


def report(out: dict[str, Any]) -> None:
    """The table a human reads."""
    rows = [
        ("bare Litestar JSON POST (yardstick)", "baseline"),
        ("issued token", "issue"),
        ("issued, from a browser (Origin, CORS)", "issue_browser"),
        ("issued, caller's JWT seen before", "issue_known_jwt"),
        ("rejected: bad JWT (401)", "reject_401"),
        ("CORS preflight (OPTIONS, 204)", "preflight"),
        ("rejected: over limit (429), one JWT", "reject_429"),
        ("rejected: over limit, new JWT each", "reject_429_fresh_jwt"),
        ("issued, 1 subject", "growth_1_subject"),
        ("issued, 100k subjects in Redis", "growth_100k_subjects"),
    ]
    if "issue_traced" in out:
        rows[2:2] = [
            ("issued, traced, all sampled (OTLP)", "issue_traced"),
            ("issued, traced, 1% sampled", "issue_traced_1pct"),
        ]
    print(
        f"\n{'scenario':38} {'CPU ms/req':>10} {'x base':>7} {'rounds':>10} {'req/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7}  statuses"
    )
    for label, key in rows:
        r = out[key]
        ratio = r.get("ratio_to_baseline", 1.0)
        ranged = spread(r["ratios_by_round"]) if "ratios_by_round" in r else ""
        print(
            f"{label:38} {r['cpu_ms_per_request']:>10.3f} {ratio:>7.2f} {ranged:>10} {r['throughput_rps']:>8.0f} "
            f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f}  {r['statuses']}"
        )
    bare = out["baseline"]["cpu_ms_by_reading"]
    print(
        f"x base: CPU over the bare endpoint's (stock uvicorn + uvloop + httptools, this run). Rows with a range: "
        f"the median of {out['rounds']}\ninterleaved rounds, each against its round's two bare readings (range: "
        f"lowest-highest round); other rows: against\nthe mean of all {len(bare)} bare readings, "
        f"{min(bare):.3f}-{max(bare):.3f} ms CPU per request."
    )
    print()
    for label, key in (
        ("200 callers arriving over 300 ms", "slow_upstream"),
        ("200 callers in lockstep, cold pool", "slow_upstream_lockstep"),
        ("200 callers in lockstep, warm pool", "slow_upstream_lockstep_warm"),
    ):
        s = out[key]
        print(
            f"upstream +300 ms, {label}: {s['throughput_rps']:.0f} req/s, p50 {s['p50_ms']:.0f} ms, "
            f"p99 {s['p99_ms']:.0f} ms, {s['cpu_ms_per_request']:.2f} ms CPU/token, statuses {s['statuses']}, "
            f"errors {s['errors']}"
        )
    print(f"service sockets+files before/after the slow runs: {out['slow_upstream']['open_fds_before_after']}")
    cold = out["cold_start"]
    first, second = cold["first_wave"], cold["second_wave"]
    print(
        f"cold start (new process, +300 ms upstream, 200 callers at once): first wave p99 {first['p99_ms']:.0f} ms, "
        f"second {second['p99_ms']:.0f} ms, ratio {cold['p99_ratio']:.2f}; p50 {first['p50_ms']:.0f} / "
        f"{second['p50_ms']:.0f} ms, CPU/token {first['cpu_ms_per_request']:.2f} / "
        f"{second['cpu_ms_per_request']:.2f} ms, statuses {first['statuses']} / {second['statuses']}, "
        f"errors {first['errors']} / {second['errors']}"
    )
    print(
        f"  ready (GET /readyz 200) {cold['ready_after_s']} s after start; upstream connections when ready / "
        f"after the first wave / after the second: {cold['upstream_connections_ready_first_second']}"
    )
    print("\n".join(burst_lines(out["bursts"], BURST_QUEUE_TIMEOUT)))
    print(
        f"Redis round trips per issued token (rate limits + a budget + blocks): {out['issue']['redis_calls_per_token']}"
    )
    proxied = out["issue_via_proxy"]
    print(
        f"issued through an egress proxy (proxy.py, CONNECT): {proxied['cpu_ms_per_request']:.3f} ms CPU/token, "
        f"{proxied['vs_direct']}x a direct token's; p50 {proxied['p50_ms']:.2f} ms, p99 {proxied['p99_ms']:.2f} ms "
        f"(direct {out['issue']['p50_ms']:.2f} / {out['issue']['p99_ms']:.2f}); {proxied['tunnels']} tunnels for "
        f"{proxied['requests']} tokens (and the warm-up's 500); statuses {proxied['statuses']}"
    )
    if "issue_traced" in out:
        every, some = out["issue_traced"], out["issue_traced_1pct"]
        print(
            f"tracing on, OTLP export: every request sampled {every['vs_untraced']}x an untraced token's CPU "
            f"({every['spans_per_token']} spans per token); 1% sampled {some['vs_untraced']}x"
        )
    head = f"{'CPU ms/req':>10} {'x yardstick':>11} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
    print(f"\n{'bare Litestar JSON POST under (one pass each)':46} {head}")
    yardstick = out["servers"]["uvicorn"]["cpu_ms_per_request"]
    for server, r in out["servers"].items():
        print(
            f"{SERVER_LABELS.get(server, server):46} {r['cpu_ms_per_request']:>10.3f} "
            f"{r['cpu_ms_per_request'] / yardstick:>11.2f} {r['throughput_rps']:>8.0f} {r['p50_ms']:>7.2f} "
            f"{r['p99_ms']:>7.2f}"
        )
    print(
        f"service peak RSS {out['service_peak_rss_mb']} MB; Redis memory per active subject "
        f"{out['redis_bytes_per_subject']} bytes"
    )
    print("\ntargets (this machine, this run):")
    print("\n".join(target_lines(out)))


def main() -> None:
    """Entry point for `python -m bench`."""
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=6000, help="requests per CPU scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="connections for CPU scenarios")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of the bare endpoint and the rows issue #16 sets CPU targets on (the requests "
        "per scenario are split over them)",
    )
    parser.add_argument("--slow-requests", type=int, default=2000, help="requests in the slow-upstream scenario")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--no-tracing",
        dest="tracing",
        action="store_false",
        help="skip the traced row (a second service with OTEL_* set, its spans exported to a local receiver)",
    )
    parser.add_argument(
        "--bursts",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=BURSTS,
        help="callers at once in each burst row, comma-separated (default 1000,5000)",
    )
    parser.add_argument(
        "--only-burst", action="store_true", help="only the burst rows (1000 and 5000 callers at once, fresh process)"
    )
    args = parser.parse_args()
    if args.only_burst:
        bursts = uvloop.run(run_burst_only(args.bursts))
        print("\n".join(burst_lines(bursts["bursts"], BURST_QUEUE_TIMEOUT)))
        return
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.tracing = args.tracing and tracing_installed()
    out = uvloop.run(run_bench(args))  # the same event loop as the service: less of the driver in the latencies
    out["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{out['when'].replace(':', '')}.json"
    path.write_text(json.dumps(out, indent=2))
    (args.out / "latest.json").write_text(json.dumps(out, indent=2))
    report(out)
    print(f"\nfigures written to {path}")


if __name__ == "__main__":
    main()
