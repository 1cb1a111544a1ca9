"""Tests of the medical imaging agent."""
