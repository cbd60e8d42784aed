"""``modelyard audit …``: verify the audit hash chain and show the log."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._common import console, open_project, sub_app, table, when
from modelyard.cli.remote import remote_client

if TYPE_CHECKING:
    from modelyard.registry.audit import AuditEvent, AuditVerification

audit_app = sub_app("The tamper-evident audit log.")


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Recompute the hash chain; exit 1 naming the first bad event if it is broken."""
    from modelyard.registry.audit import verify

    if client := remote_client(ctx):
        with client:
            report_verification(client.audit_verify())
        return
    report_verification(verify(open_project(ctx)))


def report_verification(result: AuditVerification) -> None:
    """Print the result of a hash-chain check; exit 1 if the chain is broken."""
    if not result.ok:
        console().print(
            f"[red]✗ The audit log is broken at event {result.first_bad_seq}:[/] "
            f"{result.reason}. Checked {result.events} events. Restore the table from a "
            "backup and find out who had write access to the database.",
            highlight=False,
        )
        raise typer.Exit(1)
    head = (result.head_hash or "-")[:16]
    console().print(
        f"[green]✓[/] The audit log is intact: {result.events} events, head hash {head}. "
        "Keep the head hash elsewhere to detect removed recent events."
    )


@audit_app.command("log")
def audit_log(
    ctx: typer.Context,
    obj: Annotated[
        str | None,
        typer.Option("--object", help="Only events about MODEL, MODEL@V or MODEL@alias."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 50,
) -> None:
    """Show audit events, newest first: who did what, when and why."""
    from modelyard.registry.audit import events

    if client := remote_client(ctx):
        with client:
            print_events(client.audit(limit, object_id=obj))
        return
    print_events(events(open_project(ctx), object_id=obj, limit=limit))


def print_events(found: Iterable[AuditEvent]) -> None:
    rows = [
        (
            str(e.seq),
            when(e.ts),
            e.actor,
            e.action,
            e.object_id,
            json.dumps({k: v for k, v in e.payload.items() if k != "project"}, sort_keys=True),
        )
        for e in found
    ]
    table("Audit log", ("seq", "time (UTC)", "actor", "action", "object", "details"), rows)
