"""`python -m pipelines.cli ...`: the same as the `rayswap` console script."""

from pipelines.cli import main

main()
