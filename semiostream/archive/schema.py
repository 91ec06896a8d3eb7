"""Column schemas of the two result tables of ``semiostream score`` (one source of truth).

``--out results.parquet`` (or ``.csv``) is the **windows** table, one row per scored window;
``results.videos.parquet`` (``.videos.csv``) beside it is the **inputs** table, one row per input: a whole
video, or one manifest seizure / onset-offset segment of a video. Both are sorted: inputs by ``input_id``,
windows by ``(input_id, window)``. Parquet columns have the Arrow types below; in CSV a null is an empty
cell. An input that failed has ``error`` set, ``p_tle``/``label`` null and no window rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """One column: ``name``, Arrow type name (``string``, ``int64``, ``float64``, ``bool``), meaning, nullable."""

    name: str
    type: str
    doc: str
    nullable: bool = False


WINDOW_COLUMNS: tuple[Column, ...] = (
    Column("input_id", "string", "the input: path[#stream][@onset-offset s] (joins the inputs table)"),
    Column("path", "string", "absolute path of the video file or frame folder"),
    Column("stream", "string", "ir or depth"),
    Column("window", "int64", "0-based index of the window within the input"),
    Column("first_frame", "int64", "first frame of the window (0-based frame index in the video)"),
    Column("last_frame", "int64", "last frame of the window (inclusive; a resampled window repeats or skips "
                                  "frames in between, see fps_used)"),
    Column("t_first", "float64", "capture time of the first frame, seconds after the video's first frame"),
    Column("t_last", "float64", "capture time of the last frame, seconds"),
    Column("p_tle", "float64", "p(TLE) of the window = p(labels[1]) of the bundle (model float32 output)"),
)

INPUT_COLUMNS: tuple[Column, ...] = (
    Column("input_id", "string", "path[#stream][@onset-offset s]; unique"),
    Column("path", "string", "absolute path of the video file or frame folder"),
    Column("stream", "string", "ir or depth"),
    Column("patient_id", "string", "from the manifest (null for plain files and folders)", True),
    Column("seizure_id", "string", "from the manifest", True),
    Column("true_label", "string", "the manifest's label (FLE/TLE), for comparison", True),
    Column("onset_s", "float64", "requested segment start, seconds (null = start of the video)", True),
    Column("offset_s", "float64", "requested segment end, seconds (null = end of the video)", True),
    Column("first_frame", "int64", "first frame of the scored segment", True),
    Column("stop_frame", "int64", "end of the scored segment (exclusive)", True),
    Column("num_frames", "int64", "frames in the whole video", True),
    Column("fps", "float64", "frame rate of the video itself, frames/s (see fps_from)", True),
    Column("fps_from", "string", "where fps comes from: file (stored in it), given (--fps or the manifest's "
                                 "fps) or assumed (none stored or given: 30 fps assumed)", True),
    Column("fps_used", "float64", "frame rate the windows were made at: the bundle's (the video resampled to "
                                  "it on its timestamps) or, within 1% of it, the video's own", True),
    Column("roi", "string", "crop x0 y0 x1 y1 in pixels (null = full frame)", True),
    Column("kind", "string", "the picture: 16-bit gray (IR/depth, what the model is for), 8-bit gray, 8-bit colour "
                             "(scored through its luma); null when the file could not be inspected", True),
    Column("kind_detail", "string", "the stored format it was read from (pixel format and codec, DICOM "
                                    "photometric interpretation and bits, PNG/TIFF mode)", True),
    Column("person_found", "bool", "whether the ROI detector found a person on the segment's first frame "
                                   "(null = no detector ran: --detector full, or a manifest roi)", True),
    Column("person_score", "float64", "the detector's best person score (null = none found or no detector)",
           True),
    Column("windows", "int64", "windows scored (0 on error)"),
    Column("p_tle", "float64", "mean p(TLE) over the windows (null on error)", True),
    Column("p_min", "float64", "smallest window p(TLE)", True),
    Column("p_max", "float64", "largest window p(TLE)", True),
    Column("label", "string", "predicted label: labels[1] (TLE) if p_tle >= threshold else labels[0]", True),
    Column("error", "string", "why the input could not be scored (null = scored)", True),
    Column("sha256", "string", "sha256 of the input's content (null when it could not be read)", True),
    Column("bundle_id", "string", "id of the model bundle that scored it"),
    Column("training_data", "string", "the bundle's training data: synthetic, partly synthetic, not synthetic, "
                                      "or unknown (not recorded in the bundle)"),
    Column("backend", "string", "engine backend (requested; auto = chosen per machine)"),
    Column("in_segment", "bool", "true: a manifest's seizure (its onset..offset segment, or the whole video it "
                                 "names), so label is a class decision; false: a plain file or folder, a "
                                 "recording with no seizure segment: the model learnt seizures only, so its "
                                 "p_tle and label there are no class decision"),
)


def column_names(columns: tuple[Column, ...]) -> list[str]:
    return [c.name for c in columns]


def check_row(row: dict[str, Any], columns: tuple[Column, ...]) -> dict[str, Any]:
    """Return ``row`` if it has exactly the table's columns with non-null required values; else ValueError."""
    names = column_names(columns)
    if list(row) != names:
        missing, extra = sorted(set(names) - set(row)), sorted(set(row) - set(names))
        raise ValueError(f"row columns differ from the schema: missing {missing}, unexpected {extra}")
    for c in columns:
        if row[c.name] is None and not c.nullable:
            raise ValueError(f"column {c.name!r} may not be null")
    return row


def describe(columns: tuple[Column, ...]) -> str:
    """Plain-text list of the columns for ``--help``."""
    return "\n".join(f"  {c.name:<12} {c.type:<8} {c.doc}" for c in columns)


def arrow_schema(columns: tuple[Column, ...], metadata: dict[str, str] | None = None):
    """The ``pyarrow.Schema`` of a table (pyarrow imported here only)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    return pa.schema([pa.field(c.name, types[c.type], nullable=c.nullable) for c in columns],
                     metadata={k.encode(): v.encode() for k, v in (metadata or {}).items()})
