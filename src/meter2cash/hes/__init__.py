"""The head-end side: the HES interface and a meter/DCU/HES simulator."""
