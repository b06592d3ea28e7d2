"""Training: the Lightning module and data module, runs (fit, evaluate), checkpoint I/O, encoder
features for the feature cache, gradient shares and encoder pretraining."""
