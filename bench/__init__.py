"""semiostream.bench"""
