"""rft: visual reinforcement fine-tuning (Visual-RFT, Reason-RFT) on Ray, vLLM and DeepSpeed."""

__version__ = "0.1.0"
