"""Settings from flags and environment variables alike."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from xstilts.errors import XstiltsError
from xstilts.serve.settings import Settings, add_arguments, load_settings, settings_table


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_need_only_a_repository(tmp_path: Path) -> None:
    settings = load_settings(parse("--repository", str(tmp_path)), env={})
    assert settings.repository == tmp_path
    assert (settings.host, settings.port, settings.providers, settings.variant) == ("127.0.0.1", 8000, ["cpu"], "auto")
    assert settings.drain_seconds == 20 and not settings.require_gpu and settings.models == []


def test_every_setting_has_a_flag_and_a_variable() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {option for action in parser._actions for option in action.option_strings}
    table = settings_table()
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in flags
        assert f"`XSTILTS_{name.upper()}`" in table


def test_environment_then_flags_win(tmp_path: Path) -> None:
    env = {
        "XSTILTS_REPOSITORY": str(tmp_path),
        "XSTILTS_PORT": "9001",
        "XSTILTS_MODELS": "a, b=int8",
        "XSTILTS_PROVIDERS": "TensorRT,cuda,cpu",
        "XSTILTS_REQUIRE_GPU": "true",
        "XSTILTS_MAX_QUEUE_DELAY_MS": "0.5",
        "XSTILTS_AUTH_HEALTH": "yes",
    }
    settings = load_settings(parse(), env=env)
    assert settings.port == 9001 and settings.max_queue_delay_ms == 0.5 and settings.auth_health
    assert settings.providers == ["tensorrt", "cuda", "cpu"] and settings.require_gpu
    assert settings.model_variants == {"a": None, "b": "int8"}
    overridden = load_settings(parse("--port", "9002", "--no-require-gpu", "--providers", "cpu"), env=env)
    assert overridden.port == 9002 and not overridden.require_gpu and overridden.providers == ["cpu"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "XSTILTS_REPOSITORY"),
        ({"XSTILTS_REPOSITORY": "x", "XSTILTS_PORT": "eighty"}, "--port / XSTILTS_PORT"),
        ({"XSTILTS_REPOSITORY": "x", "XSTILTS_PROVIDERS": "cuda,rocm"}, "XSTILTS_PROVIDERS"),
        ({"XSTILTS_REPOSITORY": "x", "XSTILTS_REQUIRE_GPU": "1"}, "require_gpu is set but providers is only cpu"),
        ({"XSTILTS_REPOSITORY": "x", "XSTILTS_MAX_ITEMS": "99", "XSTILTS_MAX_QUEUE_SIZE": "10"}, "max_items"),
        ({"XSTILTS_REPOSITORY": "x", "XSTILTS_API_KEY": "k", "XSTILTS_API_KEY_FILE": "f"}, "not both"),
        ({"XSTILTS_REPOSITORY": "x", "XSTILTS_MAX_BATCH_SIZE": "0"}, "XSTILTS_MAX_BATCH_SIZE"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(XstiltsError, match=message):
        load_settings(parse(), env=env)


def test_api_key_from_variable_or_file(tmp_path: Path) -> None:
    assert load_settings(parse("--repository", "x"), env={}).resolved_api_key() is None
    assert load_settings(parse("--repository", "x"), env={"XSTILTS_API_KEY": "s3cret"}).resolved_api_key() == "s3cret"
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    settings = load_settings(parse("--repository", "x", "--api-key-file", str(key_file)), env={})
    assert settings.resolved_api_key() == "from-file"
    assert "from-file" not in repr(settings) and "s3cret" not in repr(
        load_settings(parse("--repository", "x"), env={"XSTILTS_API_KEY": "s3cret"})
    )
    key_file.write_text("  \n")
    with pytest.raises(XstiltsError, match="is empty"):
        settings.resolved_api_key()
    with pytest.raises(XstiltsError, match="cannot read"):
        load_settings(parse("--repository", "x", "--api-key-file", str(tmp_path / "no")), env={}).resolved_api_key()


def test_padding_limit_is_automatic_per_device() -> None:
    auto = load_settings(parse("--repository", "x"), env={})
    assert auto.max_padding == "auto" and auto.padding_limit(gpu=False) == 0.2 and auto.padding_limit(gpu=True) == 1
    fixed = load_settings(parse("--repository", "x", "--max-padding", "0.5"), env={})
    assert fixed.padding_limit(gpu=False) == fixed.padding_limit(gpu=True) == 0.5
    with pytest.raises(XstiltsError, match="XSTILTS_MAX_PADDING"):
        load_settings(parse("--repository", "x", "--max-padding", "2"), env={})


def test_the_readme_shows_the_generated_settings_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert settings_table() in readme, "README's settings table is not settings_table(): paste its output"


def test_grpc_and_tracing_settings(tmp_path: Path) -> None:
    off = load_settings(parse("--repository", "x"), env={"XSTILTS_GRPC_PORT": "", "XSTILTS_OTLP_ENDPOINT": " "})
    assert off.grpc_port is None and off.otlp_endpoint is None and off.trace_sample_ratio == 1
    on = load_settings(
        parse("--repository", "x", "--grpc-port", "8001", "--otlp-endpoint", "http://collector:4317"),
        env={"XSTILTS_TRACE_SAMPLE_RATIO": "0.25"},
    )
    assert (on.grpc_port, on.otlp_endpoint, on.trace_sample_ratio) == (8001, "http://collector:4317", 0.25)
    with pytest.raises(XstiltsError, match="give gRPC its own port"):
        load_settings(parse("--repository", "x", "--grpc-port", "8000"), env={})
    with pytest.raises(XstiltsError, match="XSTILTS_TRACE_SAMPLE_RATIO"):
        load_settings(parse("--repository", "x", "--trace-sample-ratio", "1.5"), env={})
