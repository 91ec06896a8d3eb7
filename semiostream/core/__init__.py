"""semiostream.core: the foundation every other part may import, and that imports nothing of ours above it.

``errors`` (the one-line user error), ``device`` (where tensors live), ``files`` (atomic writes, hashing, file
kinds), ``decision`` (the event decision: mean p(TLE) >= threshold, one ``EventDecision`` per event),
``preprocess_spec`` (the preprocessing contract, :class:`~semiostream.core.preprocess_spec.PreprocessSpec`),
``roi`` (the crop box), ``frames`` (a frame's position ``seq``/``t_ns`` and a window of frames), ``segment`` (a
seizure segment: manifest row, archive input, training seizure), ``detection`` (a detector's box),
``evidence`` (an event's evidence for its review report), ``batching`` (the batch-size defaults), ``log`` and
``progress`` (terminal output). Only the standard library and third-party packages are imported here.
"""
