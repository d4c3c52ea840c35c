"""Repository planning: which models to serve, which variant of each, on which providers (once, at start-up).

The repository is listed once and the providers planned once (:func:`plan_models`); nothing here creates a
session, so every mistake a user can make in the settings or the repository is reported before the server
listens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from xstilts.contracts.bundle import BundleManifest, list_bundles, load_manifest
from xstilts.contracts.providers import uses_gpu
from xstilts.errors import XstiltsError
from xstilts.serve.core.providers import ProviderPlan, plan_for
from xstilts.serve.settings import Settings

log = logging.getLogger("xstilts.serve")

# auto variant: precisions in order of preference, on a CPU and on a GPU
CPU_PRECISIONS = ("int8", "fp32", "fp16")
GPU_PRECISIONS = ("fp16", "fp32", "int8")


@dataclass
class PlannedModel:
    """A model chosen at start-up (name, variant, folder, manifest), before its session exists.

    ``variants`` are all the variants the repository holds for it; ``providers`` the plan its session is created
    with (None: planned from the settings when it loads, for a bundle loaded on its own).
    """

    name: str
    variant: str
    folder: Path
    manifest: BundleManifest
    variants: list[str] = field(default_factory=list)
    providers: ProviderPlan | None = None


def choose_variant(
    name: str, variants: dict[str, Path], wanted: str, provider: str, allow_failed_parity: bool = False
) -> str:
    """The variant to serve: ``wanted`` if named; for ``auto``, the one made for ``provider`` (the bundle's
    ``execution.providers`` list, best first), then by precision (int8 first on a CPU, fp16 first on a GPU),
    then the variant named after its precision (``int8`` before ``O3``). ``auto`` passes over variants that
    failed the parity gate unless ``allow_failed_parity``."""
    if wanted != "auto":
        if wanted not in variants:
            raise XstiltsError(f"model {name} has no variant {wanted!r}; it has: {', '.join(sorted(variants))}")
        return wanted
    order = GPU_PRECISIONS if uses_gpu(provider) else CPU_PRECISIONS
    ranked = []
    for variant, folder in variants.items():
        try:
            manifest = load_manifest(folder)
        except XstiltsError as exc:
            log.warning("skipping %s/%s: %s", name, variant, exc)
            continue
        if manifest.failed_parity and not allow_failed_parity:
            log.warning("skipping %s/%s: it failed the parity gate", name, variant)
            continue
        meant_for = list(manifest.execution.get("providers") or [])
        fit = meant_for.index(provider) if provider in meant_for else (len(meant_for) if meant_for else 1) + 10
        precision = order.index(manifest.precision) if manifest.precision in order else len(order)
        ranked.append((fit, precision, variant != manifest.precision, variant))
    if not ranked:
        raise XstiltsError(f"model {name} has no valid variant")
    return min(ranked)[-1]


def plan_models(settings: Settings, providers: ProviderPlan | None = None) -> list[PlannedModel]:
    """The models to serve and their variants, with manifests read and checked (no session created yet).

    ``providers`` defaults to the plan for the settings on this onnxruntime build; variants are chosen for its
    preferred provider.
    """
    providers = providers or plan_for(settings)
    bundles = list_bundles(settings.repository)
    if not bundles:
        raise XstiltsError(f"model repository {settings.repository} has no bundles (<name>/<variant>/bundle.json)")
    wanted = settings.model_variants or dict.fromkeys(bundles)
    missing = [name for name in wanted if name not in bundles]
    if missing:
        raise XstiltsError(
            f"model repository {settings.repository} has no model {', '.join(missing)}; it has: {', '.join(bundles)}"
        )
    planned = []
    allowed = settings.allow_failed_parity
    for name, variant in wanted.items():
        chosen = choose_variant(name, bundles[name], variant or settings.variant, providers.preferred, allowed)
        folder = bundles[name][chosen]
        manifest = load_manifest(folder)
        if manifest.failed_parity and not allowed:
            drop = manifest.parity.get("accuracy_drop_points")
            raise XstiltsError(
                f"{name}/{chosen} failed the parity gate at export (accuracy drop {drop} points): "
                "serve another variant, or pass --allow-failed-parity"
            )
        planned.append(PlannedModel(name, chosen, folder, manifest, sorted(bundles[name]), providers))
    return planned
