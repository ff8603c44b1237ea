"""`hmt cluster status`: which nodes are live and which holds each partition, from NATS."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import typer

from hmt.cli import app

cluster_app = typer.Typer(help="Inspect the cluster's leases (docs/cluster.md).")
app.add_typer(cluster_app, name="cluster")


@cluster_app.command()
def status(
    url: str = typer.Option(
        ..., "--cluster", envvar="HMT_CLUSTER_URL", metavar="NATS_URL", help="NATS server URL(s)."
    ),
    bucket: str = typer.Option("hmt_leases", help="The lease bucket."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object."),
) -> None:
    """Print the live nodes and each held partition's holder and revision."""
    for server in url.split(","):
        parts = urlsplit(server.strip())
        if parts.scheme not in {"nats", "tls"} or not parts.hostname:
            typer.echo(f"hmt: --cluster/HMT_CLUSTER_URL: {server!r} is not a NATS URL", err=True)
            raise typer.Exit(code=2)
    try:
        found = asyncio.run(_read(url, bucket))
    except Exception as error:
        typer.echo(f"hmt: cannot read the leases at {url}: {type(error).__name__}", err=True)
        raise typer.Exit(code=1) from None
    nodes, holders = found
    if as_json:
        out = {
            "nodes": nodes,
            "partitions": {str(p): {"node": n, "revision": r} for p, (n, r) in holders.items()},
        }
        typer.echo(json.dumps(out, sort_keys=True))
        return
    counts: dict[str, int] = {}
    for node, _ in holders.values():
        counts[node] = counts.get(node, 0) + 1
    typer.echo(f"{len(nodes)} live node(s), {len(holders)} partition(s) held")
    for node in sorted(set(nodes) | set(counts)):
        live = "live" if node in nodes else "not live"
        typer.echo(f"  {node}: {counts.get(node, 0)} partition(s), {live}")


async def _read(url: str, bucket: str) -> tuple[list[str], dict[int, tuple[str, int]]]:
    from hmt.cluster.connection import connect
    from hmt.cluster.leases import read_leases

    nc = await connect(url, 3.0, name="hmt-cluster-status", persistent=False)
    try:
        return await read_leases(nc, bucket)
    finally:
        await nc.close()
