"""Triton's model repository extension over HTTP: ``POST /v2/repository/index``, ``POST
/v2/repository/models/{name}/load`` and ``.../unload``, bodies as its specification has them.

A load may name a variant: ``{"parameters": {"variant": "int8"}}`` (a folder name, or ``auto``); without one it
reloads the variant served, or loads the one the settings choose. Triton's ``config`` and ``file:`` parameters
are refused (a bundle's ``bundle.json`` is its configuration). Load and unload answer once done, with the
variant's index entry; with ``model_control`` none they are refused (409).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from xstilts.serve.core.control import NOT_LOADED, IndexEntry, RepositoryState
from xstilts.serve.http.bodies import JSON, json_response, parse, read_body
from xstilts.serve.http.routing import state_of

EXTENSION = "model_repository"
EMPTY = b"{}"


class RepositoryIndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ready: bool = Field(False, description="only the variants ready for inference")


class RepositoryIndexEntry(BaseModel):
    name: str
    version: str = Field(description="the variant (bundle folder)")
    state: RepositoryState
    reason: str = Field(description="why it is in this state: a failed load's reason, unloaded, not loaded")


class LoadParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str | None = Field(
        None, description="the variant to load: a folder name or auto (default: the one served, else as at start)"
    )


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"parameters": {"variant": "int8"}}]})

    parameters: LoadParameters | None = None


class UnloadParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unload_dependents: bool = Field(False, description="Triton's; a bundle has no dependents, so it changes nothing")


class UnloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: UnloadParameters | None = None


def entry_body(entry: IndexEntry) -> dict[str, str]:
    return {"name": entry.name, "version": entry.variant, "state": entry.state.value, "reason": entry.reason}


def model_entry(request: Request, name: str, variant: str) -> dict[str, str]:
    """The index entry of ``name``/``variant`` as the index shows it now."""
    entries = state_of(request).control.index()
    return entry_body(next(e for e in entries if (e.name, e.variant) == (name, variant)))


async def optional_body(request: Request) -> bytes:
    """The body within max_body_bytes; an empty one is ``{}`` (Triton's clients send none)."""
    raw = await read_body(request, state_of(request).settings.max_body_bytes)
    return raw if raw.strip() else EMPTY


def build_router(error_responses: dict[int | str, dict[str, Any]], api_dependencies: list) -> APIRouter:
    router = APIRouter(prefix="/v2/repository", tags=["v2: model repository"], dependencies=api_dependencies)
    model_name = Path(description="a model folder of the repository")

    def body(model: type[BaseModel]) -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{model.__name__}"}
        return {"requestBody": {"required": False, "content": {JSON: {"schema": ref}}}}

    @router.post(
        "/index",
        response_model=list[RepositoryIndexEntry],
        responses=error_responses,
        summary="Every model folder and variant of the repository, with its state and reason",
        openapi_extra=body(RepositoryIndexRequest),
    )
    async def repository_index(request: Request) -> Response:
        wanted = parse(RepositoryIndexRequest, await optional_body(request))
        entries = state_of(request).control.index(ready_only=wanted.ready)
        return json_response([entry_body(e) for e in entries])

    @router.post(
        "/models/{name}/load",
        response_model=RepositoryIndexEntry,
        responses=error_responses,
        summary="Load or reload a model (optionally naming its variant): the old one serves until the new is ready",
        openapi_extra=body(LoadRequest),
    )
    async def load_model(request: Request, name: str = model_name) -> Response:
        load = parse(LoadRequest, await optional_body(request))
        variant = load.parameters.variant if load.parameters is not None else None
        model = await state_of(request).control.load(name, variant)
        return json_response(model_entry(request, name, model.variant))

    @router.post(
        "/models/{name}/unload",
        response_model=RepositoryIndexEntry,
        responses=error_responses,
        summary="Unload a model: new requests get 503, requests under way finish",
        openapi_extra=body(UnloadRequest),
    )
    async def unload_model(request: Request, name: str = model_name) -> Response:
        parse(UnloadRequest, await optional_body(request))
        control = state_of(request).control
        await control.unload(name)
        model = state_of(request).models.get(name)
        if model is None:  # never served: nothing to unload
            return json_response(entry_body(IndexEntry(name, "", RepositoryState.UNAVAILABLE, NOT_LOADED)))
        return json_response(model_entry(request, name, model.variant))

    return router
