"""Data: safe archives, dataset scanning and reports, preprocessing, decoded images, the sample."""
