"""The gRPC control and inspection server (`swarmrl inspect` talks to it).

It runs on grpc's own thread pool beside the trio thread that runs the node(s), and reads node
state only through the copying snapshots of ``inspection.py``; the only writes are a pause flag
and a bounded task queue (``node/inbox.py``) that the node loop reads between steps. A daemon serves
its one node, a simulation all of its nodes (requests pick one by name or peer id).

Off loopback a token is required (config check); when a token is set every call, reflection
included, must carry ``authorization: Bearer <token>`` metadata or it gets UNAUTHENTICATED.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from swarmrl.config import ConfigError, ControlConfig, split_host_port
from swarmrl.control import inspection as snap
from swarmrl.control.client import CONTROL_ADDR_FILE, TOKEN_FILE
from swarmrl.control.inspection import Rejected, Served, ServedNode
from swarmrl.control.proto import control_pb2 as pb
from swarmrl.control.proto import control_pb2_grpc as pb_grpc
from swarmrl.node.inbox import InboxFull
from swarmrl.protocol.atomic_file import write_text_atomic

log = logging.getLogger("swarmrl.control")

SERVICE = pb.DESCRIPTOR.services_by_name["NodeControl"].full_name
MAX_WORKERS = 16
"""Threads answering calls; a followed metrics stream holds one for as long as it lasts."""
MAX_FOLLOWERS = 4
"""Followed metrics streams at once: the other threads stay free for everyone else's calls (16
fast-polling followers used to lock every other client out and slow the node's steps 4x)."""
MIN_FOLLOW_INTERVAL_S = 0.25
"""A follower's fastest poll: each one copies the node's recent rows and counters."""


def _rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Refusals become their gRPC status with a one-line message; anything else is logged and
    answered INTERNAL, so a bug in a snapshot never takes the server (or the node) down."""

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except Rejected as e:
            context.abort(getattr(grpc.StatusCode, e.code), str(e))
        except Exception as e:  # noqa: BLE001 - reported to the caller, logged here
            log.exception("control call %s failed", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")

    return wrapper


class NodeControl(pb_grpc.NodeControlServicer):
    def __init__(self, served: Served) -> None:
        self.served = served
        self._followers = threading.BoundedSemaphore(MAX_FOLLOWERS)

    def _pick(self, request: Any) -> ServedNode:
        return self.served.select(request.node)

    @_rpc
    def ListNodes(self, request: pb.ListNodesRequest, context: Any) -> pb.ListNodesReply:
        nodes = [snap.summary(sn) for sn in self.served.nodes()]
        return pb.ListNodesReply(server=self.served.kind, nodes=nodes)

    @_rpc
    def Status(self, request: pb.NodeRequest, context: Any) -> pb.StatusReply:
        return snap.status(self._pick(request))

    @_rpc
    def Peers(self, request: pb.NodeRequest, context: Any) -> pb.PeersReply:
        return snap.peers(self._pick(request), self.served.peer_names())

    @_rpc
    def Pool(self, request: pb.PoolRequest, context: Any) -> pb.PoolReply:
        return snap.pool(self._pick(request).node, max(0, request.limit))

    @_rpc
    def RecentRollouts(
        self, request: pb.RecentRolloutsRequest, context: Any
    ) -> pb.RecentRolloutsReply:
        node = self._pick(request).node
        return snap.recent_rollouts(node, max(0, request.limit), request.source)

    def Metrics(self, request: pb.MetricsRequest, context: Any) -> Iterator[pb.MetricsUpdate]:
        try:
            node = self._pick(request).node
        except Rejected as e:
            context.abort(getattr(grpc.StatusCode, e.code), str(e))
        if not request.follow:
            yield from self._metrics(node, request, context)
            return
        if not self._followers.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{MAX_FOLLOWERS} metrics streams are followed already; try later")
        try:
            yield from self._metrics(node, request, context)
        finally:
            self._followers.release()

    def _metrics(self, node: Any, request: pb.MetricsRequest, context: Any
                 ) -> Iterator[pb.MetricsUpdate]:
        last = None if request.last < 0 else request.last
        seen = node.metrics.totals["steps"]
        yield _update(node, snap.rows(node, last))
        interval = max(request.interval_s if request.interval_s > 0 else 0.5,
                       MIN_FOLLOW_INTERVAL_S)
        counters = snap.counters(node)
        while request.follow and context.is_active():
            time.sleep(interval)
            total = node.metrics.totals["steps"]
            new = snap.rows(node, min(total - seen, node.metrics.history.maxlen or total))
            seen = total
            now = snap.counters(node)
            if new or now != counters:
                counters = now
                yield _update(node, new)

    @_rpc
    def Config(self, request: pb.NodeRequest, context: Any) -> pb.ConfigReply:
        return snap.config(self._pick(request).node)

    @_rpc
    def Pause(self, request: pb.NodeRequest, context: Any) -> pb.PauseReply:
        return self._set_paused(self._pick(request), True)

    @_rpc
    def Resume(self, request: pb.NodeRequest, context: Any) -> pb.PauseReply:
        return self._set_paused(self._pick(request), False)

    def _set_paused(self, sn: ServedNode, paused: bool) -> pb.PauseReply:
        _check_trains(sn)
        sn.node.control.paused = paused
        return pb.PauseReply(paused=paused, state=snap.state_of(sn), step=sn.node.step)

    @_rpc
    def SubmitTask(self, request: pb.SubmitTaskRequest, context: Any) -> pb.SubmitTaskReply:
        sn = self._pick(request)
        _check_trains(sn)
        if sn.node.cfg.sapo.local == 0:
            raise Rejected("this node samples no local tasks (sapo.local = 0)",
                           "FAILED_PRECONDITION")
        task = snap.build_task(request, sn.node.task_space)
        try:
            queued = sn.node.control.submit(task)
        except InboxFull as e:
            raise Rejected(str(e), "RESOURCE_EXHAUSTED") from None
        from swarmrl.protocol.messages import task_key
        from swarmrl.tasks import materialize

        problem = materialize(task)
        return pb.SubmitTaskReply(
            task_key=task_key(task), family=problem.family, question=problem.question,
            answer=problem.answer, queued=queued,
        )


def _update(node: Any, rows: list[dict[str, Any]]) -> pb.MetricsUpdate:
    import json

    return pb.MetricsUpdate(
        steps=[json.dumps(r) for r in rows],
        counters=snap.counters(node),
        transport=snap.transport_stats(node),
    )


def _check_trains(sn: ServedNode) -> None:
    if not sn.trains:
        raise Rejected(f"{sn.name} is a bootstrap node: it does not train", "FAILED_PRECONDITION")
    state = snap.state_of(sn)
    if state in ("done", "stopping"):
        raise Rejected(f"{sn.name} is {state} (step {sn.node.step})", "FAILED_PRECONDITION")


# --- the token -------------------------------------------------------------------------------
class TokenCheck(grpc.ServerInterceptor):
    """Every call must present ``authorization: Bearer <token>`` (compared in constant time)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        metadata = dict(details.invocation_metadata or ())
        presented = str(metadata.get("authorization", "")).encode()
        if hmac.compare_digest(presented, self._expected):
            return continuation(details)
        handler = continuation(details)
        why = "wrong token" if presented else "no token (this node requires one)"

        def deny(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, why)

        if handler is not None and handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(deny)
        return grpc.unary_unary_rpc_method_handler(deny)


def resolve_token(cfg: ControlConfig, base: Path | None) -> str | None:
    """The configured token (from ``token`` or the first line of ``token_file``), or None."""
    if cfg.token:
        return cfg.token
    if not cfg.token_file:
        return None
    path = Path(cfg.token_file).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ConfigError(f"control.token_file: cannot read {path} ({e.strerror})") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigError(f"control.token_file: {path} is empty")
    return token


# --- serving ---------------------------------------------------------------------------------
@dataclass
class ControlHandle:
    """A started control server (and Prometheus endpoint, if configured)."""

    addr: str  # the bound HOST:PORT of the gRPC API, or "" (off)
    metrics_addr: str  # bound HOST:PORT of /metrics, or ""
    _grpc: grpc.Server | None = None
    _http: Any = None

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving; open calls (a followed metrics stream) are cancelled after ``grace``."""
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1.0)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


def own_token(run_dir: Path) -> str:
    """The run directory's own control token (``control.token``, mode 0600), created once."""
    path = run_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except OSError:
        token = ""
    if token:
        return token
    token = secrets.token_urlsafe(32)
    _write_run_file(run_dir, TOKEN_FILE, token)
    return token


def start_control(
    served: Served, cfg: ControlConfig, base: Path | None = None, run_dir: Path | None = None
) -> ControlHandle:
    """Start what ``cfg`` asks for (the gRPC API on ``listen``, /metrics on ``metrics_listen``);
    ConfigError (one line) if a port cannot be bound or the token file cannot be read.

    With ``run_dir`` (a daemon's, a simulation's) and no token configured, the API requires the
    run directory's own token (:func:`own_token`) unless ``allow_no_token``."""
    handle = ControlHandle("", "", None)
    if cfg.listen:
        token = resolve_token(cfg, base)
        if token is None and run_dir is not None and not cfg.allow_no_token:
            token = own_token(run_dir)
        handle._grpc, handle.addr = _serve_grpc(served, cfg, token)
    if cfg.metrics_listen:
        from swarmrl.control.prometheus import serve_metrics

        try:
            handle._http, handle.metrics_addr = serve_metrics(served, cfg.metrics_listen)
        except ConfigError:
            handle.stop(0)
            raise
    return handle


def _serve_grpc(served: Served, cfg: ControlConfig, token: str | None) -> tuple[grpc.Server, str]:
    from grpc_reflection.v1alpha import reflection

    server = grpc.server(
        ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="swarmrl-control"),
        interceptors=[TokenCheck(token)] if token else [],
        maximum_concurrent_rpcs=MAX_WORKERS,
        # grpc shares ports by default (SO_REUSEPORT): a second node would "bind" the first
        # one's port and split its calls; a taken port must be an error instead.
        options=[("grpc.so_reuseport", 0)],
    )
    pb_grpc.add_NodeControlServicer_to_server(NodeControl(served), server)
    reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server)
    host, _ = split_host_port(cfg.listen)
    try:
        port = server.add_insecure_port(cfg.listen)
    except RuntimeError:
        port = 0
    if not port:
        raise ConfigError(f"control.listen: cannot listen on {cfg.listen} (port in use?)")
    server.start()
    return server, f"{host}:{port}"


def write_control_addr(run_dir: Path, addr: str) -> Path:
    """``<run_dir>/control.addr``: where `swarmrl inspect --dir RUN_DIR` finds the API."""
    return _write_run_file(run_dir, CONTROL_ADDR_FILE, addr)


def _write_run_file(run_dir: Path, name: str, line: str) -> Path:
    """``run_dir/name`` holding ``line``, replaced atomically; mode 0600 from the start, so a
    token is never readable by others, not even for an instant."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / name
    write_text_atomic(path, line + "\n")
    return path
