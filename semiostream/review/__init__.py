"""What clinicians look at: event review reports (HTML + PNG) and where the decision came from (saliency). The
live bed dashboard, a viewer of the bus like ``semiostream watch``, is :mod:`semiostream.bus.dashboard`.

* :class:`semiostream.core.evidence.EventEvidence`: everything a report shows, gathered by the caller;
* :mod:`.report`: :func:`~.report.write_event_report`, one self-contained folder per event;
* :mod:`.figures`: the report's PNG pictures (matplotlib, no pyplot state);
* :mod:`.saliency`: motion-occlusion maps of the I3D for the decisive windows;
* :mod:`.archive`: reports of ``semiostream score --report DIR`` and their index page.
"""
