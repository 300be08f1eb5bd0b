"""Export of the tracker as serialized StableHLO (`etam export`)."""
