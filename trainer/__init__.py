"""`mkt-train`: the command line over mkt_core's training, evaluation and conversion."""
