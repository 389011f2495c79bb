# SPDX-License-Identifier: GPL-2.0-or-later
"""Metric tables: a feature sink without geometry holding one row (metric, value, unit) per metric."""
from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterFeatureSink,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

TABLE_HELP = "A table with one row per metric: metric, value, unit (e.g. a .csv or .gpkg file)."


def metrics_table_parameter(name: str, label: str) -> QgsProcessingParameterFeatureSink:
    """A table (no geometry) destination."""
    return QgsProcessingParameterFeatureSink(name, label, type=QgsProcessing.TypeVector)


def write_metrics_table(alg: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext,
                        metrics: dict, units: dict) -> str:
    """Write ``metrics`` {name: float} into table destination ``name``; returns the sink's id (its result)."""
    fields = QgsFields()
    for field in (QgsField("metric", QVariant.String), QgsField("value", QVariant.Double),
                  QgsField("unit", QVariant.String)):
        fields.append(field)
    sink, dest = alg.parameterAsSink(parameters, name, context, fields, QgsWkbTypes.NoGeometry,
                                     QgsCoordinateReferenceSystem())
    if sink is None:
        raise QgsProcessingException(f"{name}: the table {parameters.get(name)!r} cannot be created.")
    for metric, value in metrics.items():
        feature = QgsFeature(fields)
        feature.setAttributes([metric, float(value), units.get(metric, "")])
        sink.addFeature(feature, QgsFeatureSink.FastInsert)
    return dest
