"""The pieces every agent may share: the categorical support and projection, BroNet blocks and
the orthogonal init, the per-task reward normaliser, the gradient-update helper."""
