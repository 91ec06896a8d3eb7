"""semiostream.bus"""
