"""``symphony serve ID``: deploy an installed instrument on a Ray cluster, speaking the Open Inference
Protocol over HTTP.

Added to the ``symphony`` command through this distribution's ``symphony.commands`` entry point. Ray is
imported only when the command runs (the ``ray`` extra), never by ``import symphony_instruments``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ValidationError

from symphony_core import Host, SymphonyError

from ._config import ServingConfig

RAY_EXTRA = "pip install 'symphony-instruments[ray]'"
_RANGE = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+)\s*$")


@click.command()
@click.argument("extension")
@click.option(
    "--replicas", type=click.IntRange(1, 1024), help="Run this many replicas (default: serving.replicas)."
)
@click.option(
    "--autoscale",
    metavar="MIN..MAX",
    help="Autoscale between MIN and MAX replicas instead (default: serving.min_replicas..max_replicas).",
)
@click.option(
    "--address",
    metavar="RAY_ADDRESS",
    help="The Ray cluster to deploy on (default: $RAY_ADDRESS, else the cluster this machine belongs to).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="The port of Ray Serve's HTTP proxy, when this command starts it.",
)
@click.option(
    "--http-host",
    default="127.0.0.1",
    show_default=True,
    help="The address Ray Serve's HTTP proxy listens on, when this command starts it (0.0.0.0: every one).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600,
    show_default=True,
    help="Seconds to wait until every replica answers; past it the command fails, saying what Ray is waiting for.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    extension: str,
    replicas: int | None,
    autoscale: str | None,
    address: str | None,
    port: int,
    http_host: str,
    timeout: float,
) -> None:
    """Deploy the installed instrument EXTENSION on a Ray cluster, served over the Open Inference Protocol.

    Each replica runs it through its own Symphony host, with what was granted to it here and in the
    tier this host would run it in (isolated unless trusted), batching its requests. The deployment stays
    on the cluster after this command returns; `serve shutdown` (Ray's CLI) removes it. Replicas, CPUs
    and memory come from the instrument's `serving` config; --replicas and --autoscale override it.

    \b
    Examples:
      ray start --head && symphony serve acme.digits
      symphony serve acme.digits --replicas 2
      symphony serve acme.digits --autoscale 1..4 --address ray://head:10001
      curl localhost:8000/v2/models/acme.digits
    """
    if replicas is not None and autoscale is not None:
        raise click.UsageError("give --replicas or --autoscale, not both")
    bounds = None if autoscale is None else _bounds(autoscale)
    try:
        spec, serving = _read(ctx.find_root().obj, extension)
    except SymphonyError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        serving = ServingConfig.model_validate(
            {
                **serving.model_dump(),
                **(
                    {}
                    if replicas is None
                    else {"replicas": replicas, "min_replicas": None, "max_replicas": None}
                ),
                **({} if bounds is None else {"min_replicas": bounds[0], "max_replicas": bounds[1]}),
            }
        )
    except ValidationError as exc:
        raise click.BadParameter(exc.errors()[0]["msg"], param_hint="--autoscale") from None
    spec["max_request_bytes"] = int(serving.max_request_mb * 2**20)
    url = _deploy(spec, serving, address=address, port=port, http_host=http_host, timeout=timeout)
    scale = (
        f"{serving.replicas} replica(s)"
        if serving.max_replicas is None
        else f"{serving.min_replicas}..{serving.max_replicas} replicas (autoscaled)"
    )
    click.echo(f"{extension} is served by {scale} at {url}/v2/models/{extension}", err=True)
    click.echo(url)


def _bounds(text: str) -> tuple[int, int]:
    found = _RANGE.match(text)
    if found is None:
        raise click.BadParameter(f"{text!r} is not MIN..MAX, e.g. 1..4", param_hint="--autoscale")
    low, high = int(found[1]), int(found[2])
    if not 0 <= low <= high or high < 1:
        raise click.BadParameter(
            f"{text!r}: MIN must be at most MAX, and MAX at least 1", param_hint="--autoscale"
        )
    return low, high


def _read(home: Path | None, extension: str) -> tuple[dict[str, Any], ServingConfig]:
    """What each replica needs from this host (tier, grants, config) and the serving settings."""
    with Host(home, isolation="auto", actor="symphony serve") as host:
        host.discover()
        info = host.inspect(extension)
        if info.kind != "instrument":
            raise click.ClickException(
                f"{extension} is {'an' if info.kind[0] in 'aeiou' else 'a'} {info.kind} extension: "
                "`symphony serve` serves instruments only"
            )
        consent = host.consent(extension)
        if consent.new:
            raise click.ClickException(
                f"{extension} asks for permissions not granted yet, and each replica gets what was granted "
                f"here: see them with `symphony permissions {extension}`, then `symphony grant {extension}`"
            )
        granted = [] if consent.granted is None else consent.granted.permissions
        resolved = host.config(extension)
        data: dict[str, Any] = {}
        changed: set[str] = set()
        if resolved is not None:
            config = resolved.config
            data = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
            changed = {
                key.split(".")[0] for key, source in resolved.sources.items() if source.layer != "default"
            }
        spec = {
            "extension": extension,
            "isolation": host.tier(extension),
            "grants": sorted(_scopes(granted)),
            "config": {key: _text(data[key]) for key in sorted(changed) if key in data},
        }
    try:
        serving = ServingConfig.model_validate(data.get("serving", {}))
    except ValidationError as exc:
        raise click.ClickException(f"{extension}: its serving config is invalid: {exc}") from None
    return spec, serving


def _scopes(permissions: Iterable[Mapping[str, Any]]) -> set[str]:
    """Granted permissions as the scopes `Host.grant` takes (``"fs.read {data}/*.onnx"``)."""
    found: set[str] = set()
    for permission in permissions:
        kind = str(permission["type"])
        items = [
            str(item)
            for field, value in permission.items()
            if field not in ("type", "reason") and isinstance(value, (list, tuple))
            for item in value
        ]
        if items:
            found.update(f"{kind} {item}" for item in items)
        else:
            found.add(kind)
    return found


def _text(value: Any) -> str:
    """A config value as `Host.set_config` reads it: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _deploy(
    spec: dict[str, Any],
    serving: ServingConfig,
    *,
    address: str | None,
    port: int,
    http_host: str,
    timeout: float,
) -> str:
    """Deploy the replicas and wait until they answer, at most ``timeout`` seconds; return the HTTP
    proxy's URL."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise click.ClickException(f"`symphony serve` needs Ray Serve ({exc}): {RAY_EXTRA}") from None

    from ._serving import Health, Replica

    try:
        ray.init(address=address or "auto", logging_level="WARNING", log_to_driver=False)
    except ConnectionError as exc:
        raise click.ClickException(
            f"no Ray cluster at {address or 'this machine'} ({exc}): start one with `ray start --head`, "
            "or give its address with --address"
        ) from None
    actor: dict[str, Any] = {"num_cpus": serving.cpus}
    if serving.memory_mb is not None:
        actor["memory"] = serving.memory_mb * 2**20
    options: dict[str, Any] = {
        "name": "instrument",
        "ray_actor_options": actor,
        "max_ongoing_requests": serving.max_ongoing_requests,
        "health_check_period_s": 2.0,
    }
    if serving.max_replicas is None:
        options["num_replicas"] = serving.replicas
    else:
        options["autoscaling_config"] = {
            "min_replicas": serving.min_replicas,
            "max_replicas": serving.max_replicas,
            "target_ongoing_requests": serving.target_ongoing_requests,
        }
    deployed: bool | None = None
    try:
        serve.start(http_options={"host": http_host, "port": port})
        serve.run(
            serve.deployment(Health).options(name="health", ray_actor_options={"num_cpus": 0}).bind(),
            name="symphony-health",
            route_prefix="/v2",
        )
        deployed = _within(
            timeout,
            lambda: serve.run(
                serve.deployment(Replica).options(**options).bind(spec),
                name=spec["extension"],
                route_prefix=f"/v2/models/{spec['extension']}",
            ),
        )
        if not deployed:
            raise click.ClickException(
                f"{spec['extension']}: its replicas did not all answer within {timeout:g} s. Ray says: "
                f"{_pending(serve, spec['extension'])}\nThe deployment stays on the cluster, waiting: "
                f"`serve delete {spec['extension']}` removes it; ask for fewer CPUs or less memory per "
                "replica (serving.cpus, serving.memory_mb) or fewer replicas, or add nodes"
            )
    except click.ClickException:
        raise
    except Exception as exc:  # noqa: BLE001 - what Ray reports (a replica that failed to start) is the answer
        raise click.ClickException(f"{spec['extension']} could not be deployed: {exc}") from None
    finally:
        if deployed is not False:  # a deployment still being waited for keeps its thread in Ray's client
            ray.shutdown()
    return f"http://{'127.0.0.1' if http_host in ('0.0.0.0', '::') else http_host}:{port}"


def _within(timeout: float, deploy: Callable[[], object]) -> bool:
    """Run ``deploy`` (which returns once every replica answers) for at most ``timeout`` seconds: whether
    it returned in time. What it raises is raised here."""
    failure: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            deploy()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="symphony-serve-deploy", daemon=True).start()
    if not done.wait(timeout):
        return False
    if failure:
        raise failure[0]
    return True


def _pending(serve: Any, name: str) -> str:
    """What Ray Serve says of the application's deployments that are not running yet."""
    try:
        application = serve.status().applications[name]
        messages = [
            f"{deployment}: {status.message or status.status}"
            for deployment, status in application.deployments.items()
            if str(status.status) != "HEALTHY"
        ]
    except Exception as exc:  # noqa: BLE001 - the status is a courtesy; the timeout is the answer
        return f"(its status could not be read: {exc})"
    return "; ".join(messages) or str(application.status)
