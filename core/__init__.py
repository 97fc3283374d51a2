"""TransferLab's engine: data, models, training, insight and serving, importable without Streamlit."""
import os

# Before torch loads OpenMP: threads that finish early must sleep, not spin. Spinning threads collapse as soon as
# anything else wants the same cores: measured on 2 cores beside one other busy process, one forward pass of the
# default backbone took 2,200 ms spinning against 36 ms sleeping (and training 79 against 3 epochs/min with tabs
# open). Every process of ours imports `core` before torch: the web server, the CLI, training and the service.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
