"""ProtoShelf's engine: everything but the GUI, which imports nothing of Qt."""
import os

OPENMP_SPIN = "20000"
"""Busy-wait iterations of a GNU OpenMP thread before it sleeps (GOMP_SPINCOUNT): about 0.2 ms by
libgomp's own estimate of 100,000 a millisecond; its default is 300,000."""


def wait_briefly_then_sleep(environ=os.environ) -> None:
    """Tell OpenMP, before torch loads it, to spin briefly between parallel regions, then sleep.

    Embedding decodes images on the same cores as the backbone's OpenMP threads. Threads that
    sleep at once (passive waiting, what we did before) are woken for each of the backbone's layer
    operations: on a 2-core virtual machine the backbone alone ran 113 images/s that way against
    132 with this short spin (medians of 8 processes each). Threads that spin long take the cores
    the decoding needs. Measured end to end (benchmarks/embedding_throughput.py, 6-8 processes per
    setting), this spin gave 110 images/s for PNG cut-outs and 105 for 1000 px JPEGs, passive
    waiting 100 and 98, libgomp's default spin 107 and 99; 10,000-50,000 spins were alike.
    The price is paid when two processes embed side by side on the same cores, each spinning as if
    it had them alone: 300 PNGs each took 8.4-10.1 s with this spin, 6.7-7.2 s sleeping at once,
    18-24 s with libgomp's default spin (what plain PyTorch runs with).
    PASSIVE stays set: past the spin it sleeps, it does not spin at all when this process's OpenMP
    threads outnumber the cores, and other OpenMP runtimes (Intel's, LLVM's) read it. A user's own
    setting of either variable wins.
    """
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["OMP_WAIT_POLICY"] = "PASSIVE"
        environ["GOMP_SPINCOUNT"] = OPENMP_SPIN


wait_briefly_then_sleep()
