"""uvicorn's logging, with each access log line naming its request's id (``request_id=...``)."""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from xstilts.serve.core import request_ids

ACCESS_FORMAT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s request_id=%(request_id)s'


class RequestIdFilter(logging.Filter):
    """Give each record the id of the request it was logged for ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_ids.current() or "-"
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration, its access lines ending in the request's id."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["access"]["fmt"] = ACCESS_FORMAT
    config.setdefault("filters", {})["request_id"] = {"()": RequestIdFilter}
    config["handlers"]["access"]["filters"] = ["request_id"]
    return config
