"""Extract: aligned faces from videos into Parquet (a segment stage: plan -> actor -> commit -> driver)."""
