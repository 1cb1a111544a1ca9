"""`python -m fastvlm_gemini_hybrid` runs the CLI."""

from .cli import main

raise SystemExit(main())
