"""``exocheck serve``, ``exocheck login|logout``, ``exocheck user add|disable|unlock|list`` and
``exocheck sign``.

Passwords are read from a prompt (not echoed) or, with ``--password-stdin``, from the first line
of standard input; never from the command line, where other users and shell histories see them.
``exocheck login`` opens a session with a store that has users (the token in a file only its
owner can read, keyed by the database; the store keeps only its SHA-256); commands that write
then need no password until it ends: ``exocheck logout``, idle timeout, a disabled or locked
account.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from exocheck.cli._common import console, err_console
from exocheck.cli.store_cmds import (
    DbOption,
    JsonOption,
    PasswordStdin,
    UserOption,
    acting,
    open_store,
    print_json,
    read_password,
)
from exocheck.errors import ParameterError

user_app = typer.Typer(help="People who use the web service and sign lots.", no_args_is_help=True)
ByAdmin = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="Who does this, in a store without users (audit trail). A store with users takes "
        "an admin's --user or 'exocheck login'.",
        show_default=False,
    ),
]


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
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the passwords from standard input, one a line: with --user, yours "
            "first; then the new user's.",
        ),
    ] = False,
    db: DbOption = None,
    by: ByAdmin = None,
    user: UserOption = None,
) -> None:
    """Add a user with a role; the password comes from a prompt or --password-stdin.

    The first user of a store is an admin, added without a password (there is nobody to
    authenticate yet); after that an admin adds the others."""
    from exocheck.auth import Accounts
    from exocheck.auth.identity import check_first_user

    with open_store(db) as store:
        check_first_user(store, role)
        who = acting(
            store,
            "user.manage",
            by=by,
            user=user,
            password_stdin=password_stdin and user is not None,
        )
        password = read_password(password_stdin, prompt=f"Password of {name}", confirm=True)
        added = Accounts(store).add_user(
            name, role=role, password=password, by=who, printed_name=full_name
        )
    console.print(f"user {added.name} added ({added.role})", highlight=False)


@user_app.command("disable")
def user_disable(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = None,
    by: ByAdmin = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Disable a user for good (the record and the name stay); their sessions end."""
    from exocheck.auth import Accounts

    with open_store(db) as store:
        who = acting(store, "user.manage", by=by, user=user, password_stdin=password_stdin)
        Accounts(store).disable_user(name, by=who)
    console.print(f"user {name} disabled", highlight=False)


@user_app.command("unlock")
def user_unlock(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = None,
    by: ByAdmin = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Unlock an account locked after wrong passwords."""
    from exocheck.auth import Accounts

    with open_store(db) as store:
        who = acting(store, "user.manage", by=by, user=user, password_stdin=password_stdin)
        Accounts(store).unlock_user(name, by=who)
    console.print(f"user {name} unlocked", highlight=False)


def login(
    user: Annotated[str, typer.Option("--user", help="Your user name.")],
    password_stdin: PasswordStdin = False,
    db: DbOption = None,
) -> None:
    """Open a session with a store that has users: commands that write then need no password.

    The session ends after the web's idle timeout ($EXOCHECK_IDLE_TIMEOUT_MIN, 15 minutes), on
    'exocheck logout', or when the account is disabled or locked. Its token is kept in
    $EXOCHECK_SESSION_FILE (default: sessions.json in the per-user configuration folder),
    readable by you only."""
    from exocheck.auth import Accounts
    from exocheck.auth.identity import has_users, idle_timeout_s
    from exocheck.auth.token_file import forget_token, save_token

    seconds = idle_timeout_s()
    with open_store(db) as store:
        if not has_users(store):
            raise ParameterError(
                "this store has no users, so there is nothing to log in to: commands name who "
                "acts with --by NAME"
            )
        accounts = Accounts(store)
        password = read_password(password_stdin, prompt=f"Password of {user}")
        token, session = accounts.login(user, password, kind="cli")
        url = store.url
        try:
            accounts.logout(forget_token(url))  # a session opened earlier ends
            path = save_token(url, token)
        except BaseException:
            accounts.logout(token)
            raise
    console.print(
        f"logged in as {session.user.name} ({session.user.role}) to {url}; the session ends "
        f"after {seconds / 60:g} idle minutes or with 'exocheck logout'",
        highlight=False,
        soft_wrap=True,
    )
    err_console.print(f"session kept in {path}", highlight=False, soft_wrap=True)


def logout(db: DbOption = None) -> None:
    """End the session 'exocheck login' opened with the store."""
    from exocheck.auth import Accounts
    from exocheck.auth.token_file import forget_token, load_token

    with open_store(db) as store:
        url = store.url
        token = load_token(url)
        if token is not None:
            Accounts(store).logout(token)
            forget_token(url)
    state = "logged out of" if token is not None else "no session with"
    console.print(f"{state} {url}", highlight=False, soft_wrap=True)


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
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("sign")(sign)
    app.command("serve")(serve)
