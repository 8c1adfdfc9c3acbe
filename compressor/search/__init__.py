"""The optimizer: candidates from the passes' search spaces, built (in parallel where asked), verified,
measured one at a time, the Pareto front kept, and the best model that meets the constraint chosen."""
