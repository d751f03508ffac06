"""ProtoShelf's engine: everything but the GUI, which imports nothing of Qt."""
import os

# Must run before torch loads OpenMP. Embedding decodes images on the same cores as the backbone's
# threads; OpenMP threads that spin while they wait took those cycles: with passive waiting,
# end-to-end embedding on 2 cores ran 10-15% faster (from 78% to about 90% of the backbone's own
# throughput, measured when the decoding ran in worker processes; benchmarks/embedding_throughput.py).
# A user's setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
