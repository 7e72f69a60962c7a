"""Data: the synthetic benchmark, video I/O, SBI; sources, prep and the dataset build on these."""
