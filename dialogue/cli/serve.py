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
) -> None:
    """Serve the oracle over HTTP (OpenAPI at /openapi.json): predictions only, batched on the device."""
    from crux.oracle import server  # here, so that other commands do not pay for importing the web framework

    server.check_host(host, token)  # before loading anything
    server.check_connections(timeout_read, timeout_keep_alive, limit_concurrency, backlog, max_header_bytes)
    loaded = load_models(models)
    app = server.create_app(
        loaded, **oracle_settings(
            device=device, samples=samples, seed=seed, method=method, particles=particles,
            max_memory_gib=max_memory_gib, float32=float32,
        ),
        batch_window_ms=batch_window_ms, max_batch=max_batch,
        max_queries=max_queries, max_body_bytes=max_body_bytes, max_samples=max_samples, max_draws=max_draws,
        max_oracles=max_oracles, token=token,
    )
    names = list(loaded)
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    typer.echo(
        f"crux serve: {names[0]} at /ask"
        + "".join(f", {n}" for n in names[1:])
        + f" (each at /models/NAME/ask) on {where}, device {app.state.device}"
        + (", bearer token required" if token else ", loopback clients only")
        + "; OpenAPI at /openapi.json",
        err=True,
    )
    server.run(
        app, host=host, port=port, token=token, timeout_read=timeout_read, timeout_keep_alive=timeout_keep_alive,
        limit_concurrency=limit_concurrency, backlog=backlog, max_header_bytes=max_header_bytes,
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
