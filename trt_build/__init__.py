"""semiostream.trt_build"""
