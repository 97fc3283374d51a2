"""Statistics on arrays that every task uses: intervals, calibration, conformal prediction, nearest-neighbour scores."""
