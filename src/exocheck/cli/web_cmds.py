"""``exocheck serve``, ``exocheck user add|disable|unlock|list`` and ``exocheck sign``.

Passwords are read from a prompt (not echoed) or, with ``--password-stdin``, from the first line
of standard input; never from the command line, where other users and shell histories see them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from exocheck.cli._common import console, err_console
from exocheck.cli.store_cmds import DbOption, JsonOption, actor, open_store, print_json
from exocheck.errors import ParameterError

user_app = typer.Typer(help="People who use the web service and sign lots.", no_args_is_help=True)
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def read_password(from_stdin: bool, prompt: str = "Password", confirm: bool = False) -> str:
    """The password from stdin's first line or from a prompt (never echoed)."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
    else:
        if not sys.stdin.isatty():
            raise ParameterError("no terminal to ask for the password: use --password-stdin")
        password = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    if not password:
        raise ParameterError("no password given")
    return password


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Login name (never reused).")],
    role: Annotated[str, typer.Option(help="analyst, reviewer, qa or admin.")],
    full_name: Annotated[
        str | None,
        typer.Option(
            "--full-name", help="Printed name shown with signatures (default: the login name)."
        ),
    ] = None,
    password_stdin: PasswordStdin = False,
    db: DbOption = None,
    by: Annotated[str | None, typer.Option("--by", help="Who adds the user (audit trail).")] = None,
) -> None:
    """Add a user with a role; the password comes from a prompt or --password-stdin."""
    from exocheck.auth import Accounts

    password = read_password(password_stdin, confirm=True)
    with open_store(db) as store:
        user = Accounts(store).add_user(
            name, role=role, password=password, by=actor(by), printed_name=full_name
        )
    console.print(f"user {user.name} added ({user.role})", highlight=False)


@user_app.command("disable")
def user_disable(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = None,
    by: Annotated[str | None, typer.Option("--by", help="Who disables (audit trail).")] = None,
) -> None:
    """Disable a user for good (the record and the name stay); their sessions end."""
    from exocheck.auth import Accounts

    with open_store(db) as store:
        Accounts(store).disable_user(name, by=actor(by))
    console.print(f"user {name} disabled", highlight=False)


@user_app.command("unlock")
def user_unlock(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = None,
    by: Annotated[str | None, typer.Option("--by", help="Who unlocks (audit trail).")] = None,
) -> None:
    """Unlock an account locked after wrong passwords."""
    from exocheck.auth import Accounts

    with open_store(db) as store:
        Accounts(store).unlock_user(name, by=actor(by))
    console.print(f"user {name} unlocked", highlight=False)


@user_app.command("list")
def user_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List users with role and state."""
    from exocheck.auth import Accounts

    with open_store(db) as store:
        users = Accounts(store).list_users()
    rows = [
        {
            "user": u.name,
            "printed_name": u.printed_name,
            "role": u.role,
            "state": "disabled" if u.disabled else ("locked" if u.locked else "active"),
        }
        for u in users
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("user", "printed name", "role", "state")
    for r in rows:
        table.add_row(r["user"], r["printed_name"], r["role"], r["state"])
    console.print(table)


def sign(
    lot: Annotated[str, typer.Argument(help="Lot number.")],
    meaning: Annotated[
        str, typer.Option(help="reviewed, approved, rejected or 'deviation accepted'.")
    ],
    reason: Annotated[str, typer.Option(help="Why you sign (kept with the signature).")],
    user: Annotated[str, typer.Option("--user", help="Your user name.")],
    deviation: Annotated[
        str | None,
        typer.Option(
            "--deviation",
            help="With --meaning 'deviation accepted': the warning to accept (its code, as "
            "'exocheck release' lists it).",
        ),
    ] = None,
    password_stdin: PasswordStdin = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign a lot electronically (the web service's rules: password, role, four eyes).

    What is being signed (the lot's status and decision) is shown before the password is
    asked."""
    from exocheck.lots.signatures import Signing

    with open_store(db) as store:
        signing = Signing(store)
        err_console.print(signing.preview(lot, meaning), highlight=False, soft_wrap=True)
        password = read_password(password_stdin)
        record = signing.sign(
            lot,
            user=user,
            password=password,
            meaning=meaning,
            reason=reason,
            deviation=deviation,
        )
    if as_json:
        print_json(record)
        return
    console.print(
        f"lot {lot}: signed '{record['meaning']}' by {record['printed_name']} at "
        f"{record['signed_at']} (SHA-256 {record['content_sha256'][:16]}…)",
        highlight=False,
    )


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    db: DbOption = None,
) -> None:
    """Run the web service (pages and the REST API under /api/v1) with uvicorn."""
    import uvicorn

    from exocheck.web import Settings, create_app

    settings = Settings(**({"database_url": db} if db else {}))
    app = create_app(settings)
    console.print(
        f"exocheck web service on http://{host}:{port}/ (database "
        f"{app.state.services.store.url}); stop with Ctrl-C",
        highlight=False,
        soft_wrap=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.command("sign")(sign)
    app.command("serve")(serve)
