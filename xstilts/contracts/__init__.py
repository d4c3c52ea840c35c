"""The file contracts and shared types every stage uses (pure Python: no torch, no onnxruntime, no web framework).

- :mod:`~xstilts.contracts.kinds`: the task kinds (one enum, read by every stage).
- :mod:`~xstilts.contracts.checkpoint`: the metadata file that makes a folder a target checkpoint.
- :mod:`~xstilts.contracts.bundle`: the bundle manifest (``bundle.json``) and its file names.
- :mod:`~xstilts.contracts.providers`: execution provider names, short and ONNX Runtime's.
- :mod:`~xstilts.contracts.evaluation`: the split that evaluates a task and the seeded sample drawn from it.
- :mod:`~xstilts.contracts.results`: the typed bench results (``results.json``).
- :mod:`~xstilts.contracts.records`: dataclasses as strict JSON records.
- :mod:`~xstilts.contracts.hashing`: digests of files and of JSON-able settings.
- :mod:`~xstilts.contracts.interface`: the graph interface of each task kind (inputs, output, dynamic axes).
- :mod:`~xstilts.contracts.embedding`: how an encoder turns a text into a sentence vector (layer, pooling, prefix).
- :mod:`~xstilts.contracts.names`: the base of the string-valued enums.
"""
