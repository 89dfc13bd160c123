"""Rating: pure array kernels that turn bill determinants into bill lines under a tariff version."""
