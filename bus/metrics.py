"""Prometheus metrics of the scorer service (one registry per service instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class BusMetrics:
    """Counters and histograms; ``serve(port)`` exposes them at ``http://HOST:port/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("semiostream_frames", "frames received", ["bed"], registry=r)
        self.dropped = Counter("semiostream_dropped", "messages or windows dropped, by reason", ["reason"],
                               registry=r)
        self.gaps = Counter("semiostream_sequence_gaps", "frames missing from a bed's sequence", ["bed"],
                            registry=r)
        self.windows = Counter("semiostream_windows_scored", "windows scored", ["bed"], registry=r)
        self.window_errors = Counter("semiostream_window_errors", "windows whose scoring failed", registry=r)
        self.batch_size = Histogram("semiostream_batch_size", "windows per model batch", buckets=BATCH_BUCKETS,
                                    registry=r)
        self.latency = Histogram("semiostream_latency_seconds", "capture of a window's last frame -> result",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.staleness = Gauge("semiostream_bed_staleness_seconds", "seconds since a bed's last frame", ["bed"],
                               registry=r)
        self.restarts = Counter("semiostream_stream_restarts", "bed streams re-initialised", ["reason"],
                                registry=r)
        self.disconnects = Counter("semiostream_disconnects", "peer connections that ended, by endpoint (a camera "
                                   "whose frame exceeds MAXMSGSIZE is disconnected)", ["endpoint"], registry=r)
        self.camera_fps = Gauge("semiostream_camera_fps", "a bed camera's measured frame rate (frames per second "
                                "of capture time; windows are resampled to the bundle's rate when it differs)",
                                ["bed"], registry=r)
        self.beds = Gauge("semiostream_beds_active", "beds currently streaming", registry=r)
        self._server = None

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        self._server, _ = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (``name`` as exported, e.g. ``semiostream_dropped_total``)."""
        v = self.registry.get_sample_value(name, labels)
        return 0.0 if v is None else v
