"""Property-based robustness tests (Hypothesis): parsers, config loaders and privacy detectors."""
