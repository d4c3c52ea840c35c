"""Model control after start (Triton's repository extension): the index, loads, reloads and unloads.

A load builds, verifies and warms the new model beside the one serving, then switches the name to it in one step:
requests that already hold the old model finish on it (:meth:`ServedModel.hold`), new ones get the new model, and
the old one retires once its last holder has let go (its queue empty, its batcher stopped). A load that fails
changes nothing that serves; its reason stays in the index until that variant loads. One operation runs at a time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xstilts.contracts.bundle import list_bundles, load_manifest
from xstilts.contracts.names import Name
from xstilts.errors import XstiltsError
from xstilts.serve.core.errors import ServeError, conflict, not_found, unavailable
from xstilts.serve.core.model import ModelStatus, ServedModel
from xstilts.serve.core.providers import ProviderPlan, plan_for
from xstilts.serve.core.repository import PlannedModel, choose_variant
from xstilts.serve.core.watch import Fingerprint, fingerprint

if TYPE_CHECKING:
    from xstilts.serve.core.state import ServerState

log = logging.getLogger("xstilts.serve")

NOT_LOADED = "not loaded"
UNLOADED = "unloaded"


class RepositoryState(Name):
    """A variant's state in the repository index (Triton's words)."""

    READY = "READY"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class IndexEntry:
    """One model folder and variant of the repository (or one still served whose folder has gone)."""

    name: str
    variant: str
    state: RepositoryState
    reason: str


class ModelControl:
    """Loads, reloads and unloads one at a time, and what the index says about every variant."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.lock = asyncio.Lock()
        self.reasons: dict[tuple[str, str], str] = {}  # the last failed load of a variant, until it loads
        self.seen: dict[tuple[str, str], Fingerprint] = {}  # each variant's files when it last began loading
        self.loading: tuple[str, str] | None = None
        self.unloading: set[tuple[str, str]] = set()
        self._providers: ProviderPlan | None = None

    # -- what the index shows ------------------------------------------------------------------------------------

    def failed(self, name: str, variant: str, reason: str) -> None:
        """Remember why ``name``/``variant`` could not load (shown in the index until it loads)."""
        self.reasons[(name, variant)] = reason

    def began(self, planned: PlannedModel) -> None:
        """A load of ``planned`` begins: its files as they are now (poll reloads the variant when they change)."""
        self.seen[(planned.name, planned.variant)] = fingerprint(planned.folder)

    def index(self, ready_only: bool = False) -> list[IndexEntry]:
        """Every variant of every model folder, and every served model whose folder has gone, with its state."""
        try:
            bundles = list_bundles(self.state.settings.repository)
        except XstiltsError:
            bundles = {}
        entries = []
        for name in sorted(set(bundles) | set(self.state.models)):
            model = self.state.models.get(name)
            variants = set(bundles.get(name, {})) | ({model.variant} if model is not None else set())
            for variant in sorted(variants):
                entry = self._entry(name, variant, model)
                if not ready_only or entry.state is RepositoryState.READY:
                    entries.append(entry)
        return entries

    def _entry(self, name: str, variant: str, model: ServedModel | None) -> IndexEntry:
        key = (name, variant)
        failure = self.reasons.get(key, "")
        if self.loading == key:
            return IndexEntry(name, variant, RepositoryState.LOADING, "")
        if model is not None and model.variant == variant:
            if model.status is ModelStatus.READY:
                return IndexEntry(name, variant, RepositoryState.READY, failure and f"a reload failed: {failure}")
            if model.status is ModelStatus.LOADING:
                return IndexEntry(name, variant, RepositoryState.LOADING, "")
            if model.status is ModelStatus.FAILED:
                return IndexEntry(name, variant, RepositoryState.UNAVAILABLE, failure or model.error or "")
        if key in self.unloading:
            return IndexEntry(name, variant, RepositoryState.UNLOADING, "")
        if model is not None and model.variant == variant and model.status is ModelStatus.UNLOADED:
            return IndexEntry(name, variant, RepositoryState.UNAVAILABLE, failure or UNLOADED)
        return IndexEntry(name, variant, RepositoryState.UNAVAILABLE, failure or NOT_LOADED)

    # -- load and unload -----------------------------------------------------------------------------------------

    def check_enabled(self) -> None:
        if self.state.settings.model_control == "none":
            raise conflict(
                "model control is none: models load at start only; start the server with --model-control "
                "explicit (or poll) to load and unload them"
            )

    def providers(self) -> ProviderPlan:
        """The provider plan, made once (as at start)."""
        if self._providers is None:
            self._providers = plan_for(self.state.settings)
        return self._providers

    def plan(self, name: str, variant: str | None) -> PlannedModel:
        """What a load of ``name`` (``variant``: a folder name, auto, or None: the one served, else the settings'
        choice) would load. Raises not_found for a model or variant the repository lacks."""
        settings = self.state.settings
        try:
            bundles = list_bundles(settings.repository)
        except XstiltsError as exc:
            raise unavailable(str(exc)) from None
        if name not in bundles:
            raise not_found(f"the repository has no model {name!r}; it has: {', '.join(sorted(bundles)) or 'none'}")
        current = self.state.models.get(name)
        if variant is None:
            variant = current.variant if current is not None else settings.model_variants.get(name) or settings.variant
        if variant != "auto" and variant not in bundles[name]:
            raise not_found(f"model {name} has no variant {variant!r}; it has: {', '.join(sorted(bundles[name]))}")
        providers = self.providers()
        allowed = settings.allow_failed_parity
        chosen = variant
        try:
            chosen = choose_variant(name, bundles[name], variant, providers.preferred, allowed)
            manifest = load_manifest(bundles[name][chosen])
        except XstiltsError as exc:
            self.failed(name, chosen, str(exc))
            raise unavailable(f"cannot load {name}/{chosen}: {exc}") from None
        if manifest.failed_parity and not allowed:
            reason = "it failed the parity gate at export (pass --allow-failed-parity to serve it)"
            self.failed(name, chosen, reason)
            raise unavailable(f"cannot load {name}/{chosen}: {reason}")
        return PlannedModel(name, chosen, bundles[name][chosen], manifest, sorted(bundles[name]), providers)

    async def load(self, name: str, variant: str | None = None) -> ServedModel:
        """Load (or reload) ``name``: build and warm the new model beside the old, switch, retire the old."""
        self.check_enabled()
        async with self.lock:
            self.state.check_accepting()
            planned = self.plan(name, variant)
            return await self._replace(planned)

    async def _replace(self, planned: PlannedModel) -> ServedModel:
        name, key = planned.name, (planned.name, planned.variant)
        new = ServedModel(planned, self.state.tokenizer_pool)
        new.observer = self.state.observer.for_model(name)
        self.loading = key
        try:
            await self.state.start_model(new)
        except Exception as exc:
            raise self._load_failed(planned, str(exc)) from None
        finally:
            self.loading = None
        if self.state.draining:
            await new.stop()
            self.state.check_accepting()
        self.reasons.pop(key, None)
        old = self.state.models.get(name)
        self.state.models[name] = new  # the switch: requests from now on get the new model
        self.state.announce(new)
        replaced = f", replacing {name}/{old.variant}" if old is not None and old.ready else ""
        log.info("loaded %s/%s%s", name, planned.variant, replaced)
        if old is not None:
            await self._retire(old, replaced=True)
        return new

    def _load_failed(self, planned: PlannedModel, reason: str) -> ServeError:
        """Record a failed load (the old model, if any, serves on) and the error for the caller."""
        name, variant = planned.name, planned.variant
        self.failed(name, variant, reason)
        old = self.state.models.get(name)
        serving = old is not None and old.ready
        still = f"; {name}/{old.variant} still serves" if serving and old is not None else ""
        log.error("cannot load %s/%s: %s%s", name, variant, reason, still)
        if old is not None and old.status is ModelStatus.FAILED:
            old.error = reason
        return unavailable(f"cannot load {name}/{variant}: {reason}{still}")

    async def unload(self, name: str) -> None:
        """Stop serving ``name``: new requests get 503 at once, requests holding it finish, then its batcher stops."""
        self.check_enabled()
        async with self.lock:
            model = self.state.models.get(name)
            if model is None:
                self.plan(name, None)  # 404 for a name the repository lacks too; otherwise nothing is loaded
                return
            if model.status is ModelStatus.UNLOADED:
                return
            placeholder = ServedModel(model.planned, self.state.tokenizer_pool)
            placeholder.status = ModelStatus.UNLOADED
            placeholder.observer = model.observer
            self.state.models[name] = placeholder
            self.state.announce(placeholder)
            log.info("unloading %s/%s", name, model.variant)
            await self._retire(model, replaced=False)

    async def _retire(self, model: ServedModel, replaced: bool) -> None:
        key = (model.name, model.variant)
        self.unloading.add(key)
        try:
            await model.retire(self.state.settings.drain_seconds, replaced)
        finally:
            self.unloading.discard(key)

    # -- poll ----------------------------------------------------------------------------------------------------

    async def poll(self) -> None:
        """Every ``poll_seconds``: load new models and reload served variants whose files changed, until cancelled."""
        while True:
            await asyncio.sleep(self.state.settings.poll_seconds)
            try:
                await self.scan()
            except Exception:  # a repository gone for a moment (a volume remounted) must not end the polling
                log.exception("polling the model repository failed")

    async def scan(self) -> None:
        """One look at the repository (see :meth:`poll`); a failed load is tried again only once its files change."""
        settings = self.state.settings
        bundles = await asyncio.to_thread(list_bundles, settings.repository)
        wanted = settings.model_variants or dict.fromkeys(bundles)
        for name in wanted:
            if name not in bundles or self.state.draining:
                continue
            model = self.state.models.get(name)
            if model is not None and model.status is ModelStatus.UNLOADED:
                continue  # unloaded by an operator: it stays so until loaded again
            async with self.lock:
                try:
                    planned = self.plan(name, None)
                except ServeError:
                    continue
                if self.seen.get((name, planned.variant)) == await asyncio.to_thread(fingerprint, planned.folder):
                    continue
                log.info("repository: %s/%s is new or changed", name, planned.variant)
                try:
                    await self._replace(planned)
                except ServeError:
                    continue  # logged, and its reason is in the index
