"""semiostream.sources: where 16-bit IR frames come from and go to.

Recorded files behind one interface (``source.Source``; ``readers.open_source`` picks the reader: PyAV video,
GPU video, DICOM, image folders, .npy, Azure Kinect .mkv), live cameras (``cameras.open_live``: RTSP/RTP/SRT,
GenICam, Azure Kinect, Orbbec), writers (``writers``, ``write_dicom``: FFV1/PNG/DICOM HTJ2K), the codecs and
DICOM helpers they use, frame-rate resampling (``rate``), windowing (``windows``) and the synthetic IR
generator (``synth``).

Importing this package is cheap: PyAV, pydicom, imagecodecs and the camera SDKs are imported inside the modules
that need them.
"""
