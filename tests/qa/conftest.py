"""The training tests' config writer, for the QA training test."""

from tests.training.conftest import write_config  # noqa: F401
