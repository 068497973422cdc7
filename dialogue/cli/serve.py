"""``crux serve``: the oracle over HTTP (the app itself lives in ``oracle/server.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from crux.dialogue.cli.options import (
    DeviceOpt, Float32Opt, MaxMemoryOpt, MethodOpt, ParticlesOpt, SamplesOpt, SeedOpt, oracle_settings,
)
from crux.worldmodel.errors import CruxError
from crux.worldmodel.model import Model, check_model_format, load_model

_SUFFIXES = (".yaml", ".yml", ".json", ".bif")


def serve(
    models: Annotated[
        list[Path],
        typer.Argument(
            help="Scenario files or BIF networks, served by file stem at /models/NAME/ask; the first also at /ask.",
            show_default=False,
        ),
    ],
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; anything but loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to bind (0: any free one).")] = 8765,
    token: Annotated[
        Optional[str],
        typer.Option(
            "--token", envvar="CRUX_TOKEN",
            help="Require 'Authorization: Bearer TOKEN' on every request (at least 8 characters; or set CRUX_TOKEN).",
        ),
    ] = None,
    batch_window_ms: Annotated[
        float,
        typer.Option("--batch-window-ms", min=0.0, help="How long to gather concurrent requests into one oracle call."),
    ] = 2.0,
    max_batch: Annotated[
        int, typer.Option("--max-batch", min=1, help="Most queries gathered into one oracle call (1: no batching).")
    ] = 256,
    max_queries: Annotated[
        int, typer.Option("--max-queries", min=1, help="Most queries in one /ask/batch request (more: 422).")
    ] = 1000,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=64, help="Largest request body accepted (larger: 413).")
    ] = 1 << 20,
    max_samples: Annotated[
        int, typer.Option("--max-samples", min=2, help="Most draws a request may ask for (more: 422).")
    ] = 10_000,
    max_draws: Annotated[
        int,
        typer.Option(
            "--max-draws", min=2,
            help="Most interval draws one request may ask for, its samples times its queries (more: 422).",
        ),
    ] = 1_000_000,
    max_oracles: Annotated[
        int,
        typer.Option(
            "--max-oracles", min=0,
            help="Oracles kept for requests' own samples/seed, besides each model's default (least recently used dropped).",
        ),
    ] = 4,
    timeout_read: Annotated[
        float,
        typer.Option(
            "--timeout-read", min=0.001,
            help="Seconds a request's line, headers and body may take to arrive (more: 408, connection closed).",
        ),
    ] = 10.0,
    timeout_keep_alive: Annotated[
        float,
        typer.Option("--timeout-keep-alive", min=0.001, help="Seconds an idle connection is kept open between requests."),
    ] = 5.0,
    limit_concurrency: Annotated[
        int,
        typer.Option("--limit-concurrency", min=1, help="Most connections and requests at once (more: 503)."),
    ] = 512,
    backlog: Annotated[
        int, typer.Option("--backlog", min=1, help="Most connections waiting to be accepted (the listen backlog).")
    ] = 2048,
    max_header_bytes: Annotated[
        int,
        typer.Option("--max-header-bytes", min=1024, help="Most bytes of an unfinished request line and headers held (more: 400)."),
    ] = 16 * 1024,
    samples: SamplesOpt = 1000,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    method: MethodOpt = "auto",
    particles: ParticlesOpt = 100_000,
    max_memory_gib: MaxMemoryOpt = 2.0,
    float32: Float32Opt = False,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help=(
                "Answer on Ray Serve: each model a deployment of replicas, the same HTTP API "
                '(needs the ray extra: pip install -e ".\\[ray]").'
            ),
        ),
    ] = False,
    replicas: Annotated[
        Optional[int], typer.Option("--replicas", help="With --ray: replicas per model (default 1).", show_default=False)
    ] = None,
    autoscale: Annotated[
        Optional[str],
        typer.Option(
            "--autoscale", metavar="MIN:MAX",
            help="With --ray: let Ray keep MIN to MAX replicas per model, as the load asks (instead of --replicas).",
            show_default=False,
        ),
    ] = None,
    gpus_per_replica: Annotated[
        Optional[float],
        typer.Option(
            "--gpus-per-replica",
            help="With --ray: GPUs per replica (0.25: four share one); a replica with one computes on cuda (default 0).",
            show_default=False,
        ),
    ] = None,
    cpus_per_replica: Annotated[
        Optional[float],
        typer.Option(
            "--cpus-per-replica", help="With --ray: CPUs per replica, as Ray schedules them (default 1).", show_default=False
        ),
    ] = None,
    address: Annotated[
        Optional[str],
        typer.Option(
            "--address",
            help="With --ray: join the Ray cluster at this address ('auto': this machine's) instead of starting a local one.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the oracle over HTTP (OpenAPI at /openapi.json): predictions only, batched on the device."""
    from crux.oracle import server  # here, so that other commands do not pay for importing the web framework

    scale = _scale(ray, replicas, autoscale, gpus_per_replica, cpus_per_replica, address, device)
    server.check_host(host, token)  # before loading anything
    server.check_connections(timeout_read, timeout_keep_alive, limit_concurrency, backlog, max_header_bytes)
    loaded = load_models(models)
    settings = oracle_settings(
        device=device, samples=samples, seed=seed, method=method, particles=particles, max_memory_gib=max_memory_gib,
        float32=float32,
    )
    backend = None
    if scale is not None:
        from crux.oracle.rayserve import RayBackend

        backend = RayBackend()  # deployed below, once the app has checked its settings
    front = {**settings, "device": "cpu"} if backend is not None else settings  # the replicas compute, not the front
    app = server.create_app(
        loaded, **front, batch_window_ms=batch_window_ms, max_batch=max_batch,
        max_queries=max_queries, max_body_bytes=max_body_bytes, max_samples=max_samples, max_draws=max_draws,
        max_oracles=max_oracles, token=token, backend=backend,
    )
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def run(how: str) -> None:
        typer.echo(_serving(list(loaded), where, how, token), err=True)
        server.run(
            app, host=host, port=port, token=token, timeout_read=timeout_read, timeout_keep_alive=timeout_keep_alive,
            limit_concurrency=limit_concurrency, backlog=backlog, max_header_bytes=max_header_bytes,
        )

    if backend is None:
        run(f"device {app.state.device}")
        return
    from crux.oracle.replica import replica_config

    config = replica_config(**settings, batch_window_ms=batch_window_ms, max_batch=max_batch, max_oracles=max_oracles)
    _on_ray(loaded, config, scale, address, backend, run)


def _on_ray(loaded: dict[str, Model], config: dict, scale, address: str | None, backend, run) -> None:
    """Deploy the models on Ray (a local cluster, or the one at ``address``), ``run`` the HTTP app
    in front of them until SIGTERM or Ctrl-C, then take the deployments down (a local cluster as
    a whole)."""
    from crux.oracle import rayserve

    cluster = "a local Ray cluster" if address is None else f"the Ray cluster at {address}"
    typer.echo(f"crux serve: starting {len(loaded)} model{'s' if len(loaded) > 1 else ''} on {cluster} ({scale})", err=True)
    try:
        with rayserve.stop_on_signals(), rayserve.cluster(address) as local:
            if local:
                rayserve.check_fits(len(loaded), scale)
            backend.deployed = rayserve.deploy(loaded, config, scale)
            try:
                run(f"on Ray, {scale}, device {backend.device}")
            finally:
                if not local:  # a cluster of our own goes as a whole
                    backend.deployed.delete()
    except rayserve.Stopped:
        pass
    typer.echo("crux serve: stopped", err=True)


def _scale(
    ray: bool, replicas: int | None, autoscale: str | None, gpus: float | None, cpus: float | None,
    address: str | None, device: str,
):
    """The Ray options as a :class:`~oracle.rayserve.Scale` (None without --ray), checked before
    anything is loaded."""
    given = [
        name for name, value in [
            ("--replicas", replicas), ("--autoscale", autoscale), ("--gpus-per-replica", gpus),
            ("--cpus-per-replica", cpus), ("--address", address),
        ] if value is not None
    ]
    if not ray:
        if given:
            raise CruxError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for serving on Ray: add --ray")
        return None
    from crux.oracle import rayserve  # Ray itself only when asked for

    rayserve.require_ray()
    if replicas is not None and autoscale is not None:
        raise CruxError("give --replicas N (a fixed number) or --autoscale MIN:MAX, not both")
    gpus = 0.0 if gpus is None else gpus
    name = device.strip().lower()
    if name.startswith("cuda") and not gpus:
        raise CruxError(f"--device {device} on Ray needs GPUs for the replicas: give --gpus-per-replica (or --device auto)")
    if name == "cpu" and gpus:
        raise CruxError("--device cpu with --gpus-per-replica would hold GPUs and never use them: drop one of the two")
    if address is not None and not address.strip():
        raise CruxError("--address is empty: give the Ray cluster's address (host:port, ray://host:port or auto)")
    return rayserve.Scale(
        replicas=1 if replicas is None else replicas,
        autoscale=None if autoscale is None else rayserve.parse_autoscale(autoscale),
        gpus=gpus, cpus=1.0 if cpus is None else cpus,
    )


def _serving(names: list[str], where: str, how: str, token: str | None) -> str:
    return (
        f"crux serve: {names[0]} at /ask"
        + "".join(f", {n}" for n in names[1:])
        + f" (each at /models/NAME/ask) on {where}, {how}"
        + (", bearer token required" if token else ", loopback clients only")
        + "; OpenAPI at /openapi.json"
    )


def model_name(path: Path) -> str:
    """``examples/squirrel_or_cat.yaml`` -> ``squirrel_or_cat``; ``alarm.bif.gz`` -> ``alarm``."""
    name = path.name
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_models(paths: list[Path]) -> dict[str, Model]:
    """Each file loaded under its name; two files with one name are an error."""
    loaded: dict[str, Model] = {}
    seen: dict[str, Path] = {}
    for path in paths:
        name = model_name(path)
        if name in seen:
            raise CruxError(
                f"{seen[name]} and {path} would both be served as {name!r}: rename one (models are served by file stem)"
            )
        seen[name] = path
        check_model_format(path)
        loaded[name] = load_model(path)
    return loaded
