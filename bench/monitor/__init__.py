"""What the GPUs are and what they did: NVML inventory and CUDA-ordinal mapping, the sampler around the
timed rounds, and the choice of monitor per case."""
