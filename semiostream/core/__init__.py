"""semiostream.core: the foundation every other part may import, and that imports nothing of ours above it.

``errors`` (the one-line user error), ``device`` (where tensors live), ``files`` (atomic writes, hashing, file
kinds), ``decision`` (the event decision: mean p(TLE) >= threshold), ``preprocess_spec`` (the preprocessing
contract, :class:`~semiostream.core.preprocess_spec.PreprocessSpec`), ``roi`` (the crop box), ``log`` and
``progress`` (terminal output). Only the standard library and third-party packages are imported here.
"""
