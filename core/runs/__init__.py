"""Orchestration: the fair job queue, the training process and its standby, the torchrun launcher, the run pipeline
(inspect -> split -> fit -> evaluate -> trust -> save) and the `Run` handle, the one module that knows a run folder."""
