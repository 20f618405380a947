"""The faces contract: a dataset of an earlier schema version still passes the check."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ops import schema


def test_check_faces_schema_accepts_datasets_without_later_columns():
    version_1 = pa.schema([f for f in schema.FACES_SCHEMA if f.name != schema.IDENTITY_DISTANCE])
    schema.check_faces_schema(version_1, "old")
    schema.check_faces_schema(schema.FACES_SCHEMA, "new")
    assert schema.ADDED_FACES_COLUMNS[schema.IDENTITY_DISTANCE] <= schema.SCHEMA_VERSION


def test_check_faces_schema_names_a_missing_or_mistyped_column():
    without_image = pa.schema([f for f in schema.FACES_SCHEMA if f.name != schema.IMAGE])
    with pytest.raises(ValueError, match="missing column 'image'"):
        schema.check_faces_schema(without_image, "faces/a")
    index = schema.FACES_SCHEMA.get_field_index(schema.IDENTITY_DISTANCE)
    mistyped = schema.FACES_SCHEMA.set(index, pa.field(schema.IDENTITY_DISTANCE, pa.string()))
    with pytest.raises(ValueError, match="identity_distance"):
        schema.check_faces_schema(mistyped, "faces/a")
