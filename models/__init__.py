"""semiostream.models"""
