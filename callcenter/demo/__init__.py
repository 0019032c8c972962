"""Demo data: a believable brokerage built from a fixed random seed."""
