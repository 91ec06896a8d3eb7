"""Offline archive reprocessing: score many recordings with one bundle, resumably (``semiostream score``).

==================  ========================================================================================
module              responsibility
==================  ========================================================================================
:mod:`.inputs`      files, folders (recursive) and manifests -> jobs (:class:`~semiostream.core.segment.Segment`)
:mod:`.identity`    result keys: job + content sha256 (memoised by size/mtime) + run settings (bundle id ...)
:mod:`.plan`        open a job's video: segment, windows (frame ranges, times), crop; failures say why
:mod:`.runner`      this machine: decoding threads overlap inference; windows of many videos share batches
:mod:`.ray_runner`  Ray Data: actors holding one Scorer each read their windows from a shared file system
:mod:`.writer`      the work folder ``<out>.parts/``: atomic per-input chunks + completion manifest
:mod:`.rows`        the rows of one input for both tables
:mod:`.schema`      column schemas of the windows and inputs tables
:mod:`.output`      final Parquet / CSV tables assembled from the chunks, sorted
:mod:`.progress`    windows/s and ETA
:mod:`.run`         the whole run (:func:`~.run.score_archive`), summary and exit status
==================  ========================================================================================
"""
