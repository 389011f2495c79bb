# SPDX-License-Identifier: GPL-2.0-or-later
"""Metric tables: a feature sink without geometry holding one row (metric, value, unit) per metric."""
from __future__ import annotations

from qgis.core import (
    Qgis,
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

# Field types: QMetaType from QGIS 3.38, where building a QgsField with a QVariant type is deprecated (QGIS 4 / Qt 6
# removes it); QVariant before (3.22 to 3.36 take no QMetaType).
if Qgis.QGIS_VERSION_INT >= 33800:
    from qgis.PyQt.QtCore import QMetaType

    STRING, DOUBLE = QMetaType.Type.QString, QMetaType.Type.Double
else:
    from qgis.PyQt.QtCore import QVariant

    STRING, DOUBLE = QVariant.String, QVariant.Double

TABLE_HELP = "A table with one row per metric: metric, value, unit (e.g. a .csv or .gpkg file)."


def metrics_table_parameter(name: str, label: str) -> QgsProcessingParameterFeatureSink:
    """A table (no geometry) destination."""
    return QgsProcessingParameterFeatureSink(name, label, type=QgsProcessing.TypeVector)


def metrics_fields() -> QgsFields:
    """The metric table's fields: metric (text), value (double), unit (text)."""
    fields = QgsFields()
    for field in (QgsField("metric", STRING), QgsField("value", DOUBLE), QgsField("unit", STRING)):
        fields.append(field)
    return fields


def write_metrics_table(alg: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext,
                        metrics: dict, units: dict) -> str:
    """Write ``metrics`` {name: float} into table destination ``name``; returns the sink's id (its result)."""
    fields = metrics_fields()
    sink, dest = alg.parameterAsSink(parameters, name, context, fields, QgsWkbTypes.NoGeometry,
                                     QgsCoordinateReferenceSystem())
    if sink is None:
        raise QgsProcessingException(f"{name}: the table {parameters.get(name)!r} cannot be created.")
    for metric, value in metrics.items():
        feature = QgsFeature(fields)
        feature.setAttributes([metric, float(value), units.get(metric, "")])
        sink.addFeature(feature, QgsFeatureSink.FastInsert)
    return dest
