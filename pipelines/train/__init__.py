"""Train: the shared-encoder model, data-parallel on Ray Train.

driver.py checks and starts the run; worker.py is the loop on each rank; data.py reads the
faces, feed.py delivers them to the device.
"""
