"""Meter data management: devices, measurements, VEE, TOU and bill determinants."""
