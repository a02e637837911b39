"""Lidar 3D detection family: a PointPillars/CenterPoint-lite detector with a float -> calibration -> QAT chain."""

__all__: list[str] = []
