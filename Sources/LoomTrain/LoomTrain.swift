// LoomTrain: AdamW, schedules, clipping, the training loop, checkpoints, one file per stage.
@_exported import LoomNN
