"""``exocheck measurement withdraw``: correct a lot by withdrawing a wrong measurement.

The row stays (struck through on the lot page and in the audit trail) and no longer counts; the
decision is computed again. In a store with users the withdrawal is an electronic signature
(``--user`` and the password again, from a prompt or ``--password-stdin``); in a store without
users it is signed by name (``--by``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from exocheck.cli._common import console
from exocheck.cli.store_cmds import (
    ByOption,
    DbOption,
    JsonOption,
    actor,
    measurement_app,
    print_json,
    writing_store,
)
from exocheck.cli.web_cmds import PasswordStdin, read_password
from exocheck.errors import ParameterError


def withdraw(
    lot: Annotated[str, typer.Argument(help="Lot number.")],
    measurement: Annotated[int, typer.Argument(help="Measurement id ('exocheck lot show').")],
    reason: Annotated[str, typer.Option(help="Why it is withdrawn (kept with the signature).")],
    user: Annotated[
        str | None, typer.Option("--user", help="Your user name (a store with users).")
    ] = None,
    password_stdin: PasswordStdin = False,
    by: ByOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Withdraw a wrong measurement from an open lot (e-signed; the row stays, struck through)."""
    from exocheck.lots import actions, signatures

    with writing_store(db) as store:
        if store.has_users():
            if by:
                raise ParameterError(
                    "this store has users, who sign with their password: give --user NAME "
                    "(not --by)"
                )
            if not user:
                raise ParameterError("give --user NAME: a withdrawal is signed with your password")
            password = read_password(password_stdin)
            record = signatures.withdraw(
                store, lot, measurement, user=user, password=password, reason=reason
            )
        else:
            if user:
                raise ParameterError("this store has no users: sign with --by NAME")
            record = actions.withdraw_measurement(
                store, lot, measurement, by=actor(by), reason=reason
            )
    if as_json:
        print_json(record)
        return
    console.print(
        f"lot {lot}: measurement {record['measurement']} ({record['kind']}) withdrawn by "
        f"{record['by']}; the decision is computed again without it",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    measurement_app.command("withdraw")(withdraw)
