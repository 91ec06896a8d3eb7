"""semiostream.dali_pipes"""
