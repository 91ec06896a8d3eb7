"""What clinicians look at: event review reports (HTML + PNG), where the decision came from (saliency), and
the live bed dashboard.

* :mod:`.evidence`: :class:`~.evidence.EventEvidence`, everything a report shows, gathered by the caller;
* :mod:`.report`: :func:`~.report.write_event_report`, one self-contained folder per event;
* :mod:`.figures`: the report's PNG pictures (matplotlib, no pyplot state);
* :mod:`.saliency`: motion-occlusion maps of the I3D for the decisive windows;
* :mod:`.archive`: reports of ``semiostream score --report DIR`` and their index page;
* :mod:`.dashboard`: ``semiostream dashboard``, the live web page of all beds.
"""
