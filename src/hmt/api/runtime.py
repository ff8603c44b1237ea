"""The running hmt each route works with, as a typed dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hmt.engine.facade import Facade


def runtime_of(request: Request) -> Facade:
    """The running hmt that `create_app` was given."""
    runtime: Facade = request.app.state.runtime
    return runtime


Runtime = Annotated[Facade, Depends(runtime_of)]
