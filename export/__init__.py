"""edgekit.export: conversion to ONNX, TFLite, OpenVINO and ncnn, calibration, verification.

Host side: heavy converters are imported inside the functions that need them.
"""
