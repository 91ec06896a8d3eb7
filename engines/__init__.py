"""semiostream.engines"""
