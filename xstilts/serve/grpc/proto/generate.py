"""Regenerate the Python modules of ``grpc_predict_v2.proto`` (``python -m xstilts.serve.grpc.proto.generate``).

The generated modules are kept in the repository, so that installing the server needs no protobuf compiler and
no build step, only the ``grpc`` extra's runtime; ``tests/serve/test_grpc.py`` checks that they are what this script
makes from the vendored proto. One change is made to protoc's output: the messages are built in a descriptor pool
of their own rather than protobuf's default one, because other packages (``tritonclient``'s
``grpc_service.proto``) define the same ``inference.*`` names, and two definitions of a name in one pool cannot
be imported into one process.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]  # the folder holding the xstilts package
PROTO = HERE / "grpc_predict_v2.proto"
OUTPUTS = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2_grpc.py")
DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
OWN_POOL = "_POOL = _descriptor_pool.DescriptorPool()  # its own pool: see xstilts.serve.grpc.proto.generate\n"


def generate(into: Path) -> dict[str, str]:
    """The generated modules' texts (written under ``into``), the descriptor pool made private."""
    from grpc_tools import protoc

    relative = PROTO.relative_to(ROOT)
    code = protoc.main(["protoc", f"-I{ROOT}", f"--python_out={into}", f"--grpc_python_out={into}", str(relative)])
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    texts = {name: (into / relative.parent / name).read_text() for name in OUTPUTS}
    messages = texts[OUTPUTS[0]]
    if messages.count(DEFAULT_POOL) != 1:
        raise SystemExit("protoc's output no longer adds the file to the default pool once: update this script")
    head, tail = messages.split("\n_sym_db = ", 1)
    texts[OUTPUTS[0]] = head + "\n" + OWN_POOL + "_sym_db = " + tail.replace(DEFAULT_POOL, "_POOL.AddSerializedFile(")
    return texts


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        for name, text in generate(Path(scratch)).items():
            (HERE / name).write_text(text)
    print(f"wrote {', '.join(OUTPUTS)} from {PROTO.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
