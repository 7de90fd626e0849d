"""Congestion control, send side: delay- and loss-based estimation, probing and pacing (GCC family)."""

from netcore.cc.estimator import BandwidthEstimator
from netcore.cc.pacer import Pacer
from netcore.cc.probe import ProbeCluster

__all__ = ["BandwidthEstimator", "Pacer", "ProbeCluster"]
