"""Every server setting, from command-line flags and environment variables alike.

One :class:`Settings` model; each field ``some_name`` is the flag ``--some-name`` and the environment variable
``XSTILTS_SOME_NAME``. A flag wins over the environment, the environment over the default. Lists are
comma-separated; booleans take 1/0, true/false, yes/no, on/off.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from xstilts.contracts.providers import Provider
from xstilts.errors import XstiltsError

ENV_PREFIX = "XSTILTS_"
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
CPU_MAX_PADDING = 0.2


class Settings(BaseModel):
    """The server's settings (see the module docstring for how flags and variables map to fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repository: Path = Field(description="model repository: bundles in REPOSITORY/NAME/VARIANT/")
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on (0 picks a free one)")
    grpc_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="port of the v2 gRPC service (inference.GRPCInferenceService; Triton uses 8001), on the same "
        "host, models and limits (empty: off; 0 picks a free one; needs the grpc extra)",
    )
    models: list[str] = Field(
        default_factory=list, description="models to serve, comma-separated, each NAME or NAME=VARIANT (empty: all)"
    )
    variant: str = Field(
        "auto",
        description="variant for every model: a folder name, or auto: the one made for the provider that runs "
        "(bundle.json execution.providers), then int8 on a CPU, fp16 on a GPU, then fp32",
    )
    providers: list[Provider] = Field(
        default_factory=lambda: [Provider.CPU],
        description="execution providers in order of preference: tensorrt,cuda,cpu",
    )
    require_gpu: bool = Field(False, description="refuse to start unless a GPU provider actually runs every model")
    allow_failed_parity: bool = Field(
        False, description="serve variants that failed export's parity gate (kept with --keep-failed)"
    )
    max_batch_size: int = Field(
        8, ge=1, le=4096, description="most items in one batch (8 suits CPUs; GPUs want 32 to 128)"
    )
    max_batch_tokens: int = Field(
        16384, ge=1, description="most padded tokens in one batch (items x choices x longest sequence)"
    )
    max_queue_delay_ms: float = Field(
        2.0, ge=0, le=10_000, description="longest wait for a busy engine's next batch to fill, from the oldest arrival"
    )
    max_padding: Annotated[float, Field(ge=0, le=1)] | Literal["auto"] = Field(
        "auto",
        description="most padding in a batch, as a share of its tokens: a batch is the oldest waiting item and "
        "those closest to it in length that keep within this (1: any length; auto: 0.2 on a CPU, 1 on a GPU)",
    )
    max_queue_size: int = Field(1024, ge=1, description="most items waiting per model; beyond it: 429")
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads (0: one per core)")
    inter_op_threads: int = Field(0, ge=0, description="ONNX Runtime inter-op threads (0: its default)")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="ONNX Runtime graph optimization level"
    )
    spin_wait: bool = Field(
        False, description="let ONNX Runtime's threads spin between runs (faster alone, steals CPU from the server)"
    )
    io_binding: Literal["auto", "on", "off"] = Field(
        "auto", description="IO binding: auto uses it on GPU providers only"
    )
    warmup: bool = Field(True, description="run each model once before reporting ready")
    verify_bundles: bool = Field(
        True,
        description="check every bundle file's size and sha256 against bundle.json before loading it (reads each "
        "file once: see the README for the cost)",
    )
    model_control: Literal["none", "explicit", "poll"] = Field(
        "none",
        description="none: load at start, the repository API's load and unload refused; explicit: also load, "
        "reload and unload through POST /v2/repository/models/NAME/load and /unload; poll: explicit, and every "
        "poll_seconds load new models and reload changed bundles",
    )
    poll_seconds: float = Field(
        10.0, gt=0, le=86_400, description="with model_control poll, seconds between looks at the repository"
    )
    max_body_bytes: int = Field(1_048_576, ge=64, description="largest request body; beyond it: 413")
    max_items: int = Field(64, ge=1, description="most items in one request; beyond it: 413")
    max_windows: int = Field(
        16,
        ge=1,
        description="most windows one question-answering context may take (its bundle's length and stride); "
        "beyond it: 413",
    )
    api_key: SecretStr | None = Field(None, description="bearer token for inference endpoints (the file is safer)")
    api_key_file: Path | None = Field(None, description="file holding the bearer token")
    auth_health: bool = Field(False, description="also require the token on health, metrics and docs endpoints")
    drain_seconds: float = Field(20.0, ge=0, description="on SIGTERM, how long in-flight requests may take to finish")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="log level")
    access_log: bool = Field(False, description="log every request, with its id (costs CPU at high load)")
    otlp_endpoint: str | None = Field(
        None,
        description="OpenTelemetry collector to send traces to over OTLP/gRPC, e.g. http://collector:4317 "
        "(empty: tracing off; needs the tracing extra)",
    )
    trace_sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="share of the traces that start at the server which are recorded (a request with a traceparent "
        "follows its sampled flag)",
    )

    @field_validator("models", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("providers", mode="before")
    @classmethod
    def _split_lower(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return [str(v).strip().lower() for v in value if str(v).strip()]
        return value

    @field_validator("log_level", "graph_optimization", "io_binding", "max_padding", "model_control", mode="before")
    @classmethod
    def _lower_choice(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("api_key", "otlp_endpoint", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.providers:
            raise ValueError("providers is empty: name at least one of tensorrt, cuda, cpu")
        if len(set(self.providers)) != len(self.providers):
            raise ValueError(f"providers lists one twice: {','.join(self.providers)}")
        if self.max_items > self.max_queue_size:
            raise ValueError(f"max_items ({self.max_items}) is larger than max_queue_size ({self.max_queue_size})")
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("set api_key or api_key_file, not both")
        if self.require_gpu and self.providers == ["cpu"]:
            raise ValueError("require_gpu is set but providers is only cpu: add cuda or tensorrt")
        if self.grpc_port is not None and self.grpc_port == self.port and self.port != 0:
            raise ValueError(f"grpc_port and port are both {self.port}: give gRPC its own port")
        return self

    def padding_limit(self, gpu: bool) -> float:
        """``max_padding`` for a model on a GPU provider (``gpu``) or a CPU, ``auto`` resolved."""
        if self.max_padding == "auto":
            return 1.0 if gpu else CPU_MAX_PADDING
        return float(self.max_padding)

    @property
    def model_variants(self) -> dict[str, str | None]:
        """``--models`` as ``{name: variant or None}`` (None: the ``--variant`` rule)."""
        chosen: dict[str, str | None] = {}
        for entry in self.models:
            name, _, variant = entry.partition("=")
            chosen[name.strip()] = variant.strip() or None
        return chosen

    def resolved_api_key(self) -> str | None:
        """The bearer token from ``api_key`` or ``api_key_file``, or None when auth is off."""
        if self.api_key is not None:
            return self.api_key.get_secret_value().strip()
        if self.api_key_file is not None:
            try:
                key = self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise XstiltsError(f"cannot read api_key_file {self.api_key_file}: {exc.strerror}") from None
            if not key:
                raise XstiltsError(f"api_key_file {self.api_key_file} is empty")
            return key
        return None


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; unset flags stay None so that the environment and defaults apply."""
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        help_text = f"{field.description} [env {env_name(name)}"
        default = field.get_default(call_default_factory=True)
        if name == "repository":
            help_text += ", required]"
        elif default not in (None, []):
            shown = ",".join(default) if isinstance(default, list) else default
            help_text += f", default {shown}]"
        else:
            help_text += "]"
        if annotation is bool:
            parser.add_argument(flag_name(name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag_name(name), default=None, metavar=name.upper(), help=help_text)


def load_settings(
    args: argparse.Namespace | Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Settings from flags (``args``), then ``XSTILTS_*`` variables (``env``, default ``os.environ``), then defaults."""
    env = os.environ if env is None else env
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        if given.get(name) is not None:
            values[name] = given[name]
        elif env.get(env_name(name), "") != "":
            values[name] = env[env_name(name)]
    if "repository" not in values:
        raise XstiltsError(f"no model repository: pass --repository or set {env_name('repository')}")
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            where = f"{flag_name(field)} / {env_name(field)}" if field else "settings"
            problems.append(f"{where}: {error['msg']}")
        raise XstiltsError("invalid settings: " + "; ".join(problems)) from None


def settings_table() -> str:
    """The settings as a Markdown table (flag, variable, default, meaning), for the README."""
    rows = ["| flag | environment variable | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if name == "repository":
            shown = "(required)"
        elif default is None or default == []:
            shown = "(none)"
        elif isinstance(default, list):
            shown = ",".join(default)
        elif isinstance(default, bool):
            shown = str(default).lower()
        else:
            shown = str(default)
        rows.append(f"| `{flag_name(name)}` | `{env_name(name)}` | {shown} | {field.description} |")
    return "\n".join(rows)
