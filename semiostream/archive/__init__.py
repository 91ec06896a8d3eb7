"""Offline archive reprocessing: score many recordings with one bundle, resumably."""
