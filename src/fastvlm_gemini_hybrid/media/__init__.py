"""Media handling: loading and limits, metadata stripping before cloud calls, DICOM, video."""
