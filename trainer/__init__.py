"""semiostream.trainer"""
