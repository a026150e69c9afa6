"""``POST /api/v1/login`` and ``POST /api/v1/logout``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from exocheck.web.deps import ApiUser, Svc, bearer_token

router = APIRouter(tags=["session"])


class Login(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1024)


class Token(BaseModel):
    token: str
    user: str
    role: str
    idle_timeout_min: float


@router.post("/login", response_model=Token, responses={401: {}, 423: {}})
def login(body: Login, svc: Svc) -> Token:
    """A session token for ``Authorization: Bearer``; 401 wrong password, 423 locked account."""
    token, session = svc.accounts.login(body.username, body.password, kind="api")
    return Token(
        token=token,
        user=session.user.name,
        role=session.user.role,
        idle_timeout_min=svc.settings.idle_timeout_min,
    )


@router.post("/logout", status_code=204)
def logout(request: Request, user: ApiUser, svc: Svc) -> None:
    """End this session (the token stops working at once)."""
    svc.accounts.logout(bearer_token(request))
