"""Graded checks, one module per topic, each with its catalogue of known mistakes (`MISTAKES`)
and the check for each solution object (`CHECKS`: dotted target -> check function)."""

TOPICS = ["tokenization", "embeddings", "attention", "feedforward", "residual", "normalization",
          "encoder", "decoder", "training", "transfer"]
